/*
 * test_ring.c - the pump's chunk ring (consumer/cv_ring.c): the text format
 * COPY and LOAD DATA read, written field by field, and the hand-over of full
 * chunks from the reader to the sender.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_pump.h"

#include <stdlib.h>
#include <string.h>

static int setup(void **state) {
    cv_pump *p = calloc(1, sizeof(*p));
    if (!p || !cv_ring_init(p))
        return -1;
    *state = p;
    return 0;
}

static int teardown(void **state) {
    cv_pump *p = *state;
    cv_ring_free(p);
    free(p);
    return 0;
}

static void expect_chunk(const cv_pump *p, int slot, const char *want, size_t len) {
    assert_int_equal(p->ring.used[slot], len);
    assert_memory_equal(p->ring.chunk[slot], want, len);
}

static void test_text_fields(void **state) {
    cv_pump *p = *state;
    static const char value[] = "a\tb\\c\nd\re\0f";

    assert_true(cv_ring_put_field(p, 0, value, sizeof(value) - 1, false, '\t'));
    assert_true(cv_ring_put_field(p, 0, NULL, 0, false, '\t'));
    assert_true(cv_ring_put_field(p, 0, "", 0, false, '\n'));
    static const char want[] = "a\\tb\\\\c\\nd\\re\\0f\t\\N\t\n";
    expect_chunk(p, 0, want, sizeof(want) - 1);
}

static void test_binary_fields(void **state) {
    cv_pump *p = *state;

    assert_true(cv_ring_put_field(p, 1, "\x00\xff\x10", 3, true, '\n'));
    expect_chunk(p, 1, "\\\\x00ff10\n", 10); /* COPY: \\x and the digits */
    p->bare_hex = true;                      /* LOAD DATA: digits for UNHEX() */
    assert_true(cv_ring_put_field(p, 2, "\x00\xff\x10", 3, true, '\t'));
    expect_chunk(p, 2, "00ff10\t", 7);
}

/* A field larger than a chunk grows it, keeping what was there. */
static void test_a_chunk_grows(void **state) {
    cv_pump *p = *state;
    size_t big = 3 * CV_PUMP_CHUNK;
    char *value = malloc(big);

    assert_non_null(value);
    memset(value, '\t', big); /* every byte escaped: twice the size */
    assert_true(cv_ring_put_field(p, 0, "x", 1, false, '\t'));
    assert_true(cv_ring_put_field(p, 0, value, big, false, '\n'));
    assert_int_equal(p->ring.used[0], 2 + 2 * big + 1);
    assert_true(p->ring.cap[0] >= p->ring.used[0]);
    assert_memory_equal(p->ring.chunk[0], "x\t\\t\\t", 6);
    assert_int_equal(p->ring.chunk[0][p->ring.used[0] - 1], '\n');
    free(value);
}

/* The reader hands over chunks that hold something, in ring order, and
 * keeps one for itself: three of four can wait for the sender. An empty
 * chunk handed over with the end is not counted; the end and its status
 * are. */
static void test_hand_over(void **state) {
    cv_pump *p = *state;
    int slot = 0;

    for (int i = 0; i < CV_PUMP_CHUNKS - 1; i++) {
        assert_true(cv_ring_put_field(p, slot, "r", 1, false, '\n'));
        p->ring.rows[slot] = 1;
        assert_true(cv_ring_hand_over(p, &slot, false, CV_OK, ""));
        assert_int_equal(slot, (i + 1) % CV_PUMP_CHUNKS);
        assert_int_equal(p->ring.count, i + 1);
        assert_int_equal(p->ring.used[slot], 0);
    }
    assert_int_equal(p->ring.head, 0);
    assert_false(p->ring.done);
    /* The sender takes one (what cv_pump.c's release does), the reader ends. */
    p->ring.used[p->ring.head] = 0;
    p->ring.head = (p->ring.head + 1) % CV_PUMP_CHUNKS;
    p->ring.count--;
    assert_true(cv_ring_hand_over(p, &slot, true, CV_ERR_ODBC, "fetch failed"));
    assert_int_equal(p->ring.count, 2); /* the empty chunk is not passed on */
    assert_true(p->ring.done);
    assert_int_equal(p->ring.err, CV_ERR_ODBC);
    assert_string_equal(p->ring.why, "fetch failed");
}

/* A sender that stopped the pump makes the reader's hand-over fail at once,
 * even with every chunk full. */
static void test_hand_over_after_stop(void **state) {
    cv_pump *p = *state;
    int slot = 0;

    p->ring.count = CV_PUMP_CHUNKS - 1;
    p->ring.stop = true;
    assert_false(cv_ring_hand_over(p, &slot, false, CV_OK, ""));
    assert_int_equal(p->ring.count, CV_PUMP_CHUNKS - 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_chunk_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_over_after_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
