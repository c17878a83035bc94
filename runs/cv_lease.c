/*
 * cv_lease.c - the `leases` collection: claims, renewals and releases by
 * workers, and the scheduler's take-back of leases that ran out. Each write is
 * one conditional update naming the state it expects (see cv_lease.h).
 */
#include "cv_lease.h"

#include "cv_retain.h"
#include "cv_runs.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Appends {key: {op: value}} for a string value. */
static void append_op(bson_t *doc, const char *key, const char *op, const char *value) {
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(doc, key, &sub);
    BSON_APPEND_UTF8(&sub, op, value);
    bson_append_document_end(doc, &sub);
}

/* After a claim that did not take: is the attempt held (the claimant should
 * wait and claim again) or over (the message is a duplicate)? A lease of this
 * attempt that is still "held" counts as held even when it has run out by
 * now: it may have run out between the claim and this read (seen on the test
 * stack: a restarted worker skipped the run of the worker it replaced), and
 * the next claim takes it over. Likewise an earlier attempt not done yet. */
static cv_claim claim_refused(cv_mongo *m, const cv_job *job, char *holder, size_t holder_len) {
    bson_t *doc = NULL;
    char why[256];
    const char *state, *expires, *worker;
    int64_t attempt;
    cv_claim out = CV_CLAIM_OVER;
    bson_iter_t it;

    if (cv_mongo_find_id(m, CV_COLL_LEASES, job->run_id, &doc, why, sizeof(why)) != CV_OK)
        return CV_CLAIM_OVER;
    if (bson_iter_init_find(&it, doc, "cancelled") && BSON_ITER_HOLDS_BOOL(&it) &&
        bson_iter_bool(&it)) {
        bson_destroy(doc);
        return CV_CLAIM_CANCELLED;
    }
    state = cv_mongo_doc_str(doc, "state");
    expires = cv_mongo_doc_str(doc, "expires_at");
    worker = cv_mongo_doc_str(doc, "worker");
    attempt = cv_mongo_doc_int(doc, "attempt", -1);
    if (state && ((attempt == job->attempt && strcmp(state, "held") == 0) ||
                  (attempt >= 0 && attempt < job->attempt && strcmp(state, "done") != 0))) {
        snprintf(holder, holder_len, "%s (lease until %s)", worker ? worker : "?",
                 expires ? expires : "?");
        out = CV_CLAIM_HELD;
    }
    bson_destroy(doc);
    return out;
}

/* Appends what a claim sets: the attempt held by `worker` from now_ms. */
static void append_held(bson_t *doc, const cv_job *job, const char *message, const char *worker,
                        int lease_seconds, int64_t now_ms) {
    BSON_APPEND_UTF8(doc, "state", "held");
    BSON_APPEND_INT32(doc, "attempt", job->attempt);
    BSON_APPEND_UTF8(doc, "worker", worker);
    cv_mongo_append_time(doc, "claimed_at", now_ms);
    cv_mongo_append_time(doc, "heartbeat_at", now_ms);
    cv_mongo_append_time(doc, "expires_at", now_ms + (int64_t)lease_seconds * 1000);
    BSON_APPEND_UTF8(doc, "message", message); /* what an expired lease is retried with */
    cv_retain_append_day(doc, now_ms);         /* pruned leases_days after, once its run ended */
}

/* Appends what a lease keeps from its first claim. */
static void append_run(bson_t *doc, const cv_job *job) {
    BSON_APPEND_UTF8(doc, "job_id", job->job_id);
    BSON_APPEND_UTF8(doc, "project_id", job->project_id);
    BSON_APPEND_INT32(doc, "max_attempts", job->max_attempts > 0 ? job->max_attempts : 1);
    BSON_APPEND_INT32(doc, "backoff_seconds", job->backoff_seconds > 0 ? job->backoff_seconds : 60);
}

/* The lease document of a first claim. */
static void first_lease(bson_t *doc, const cv_job *job, const char *message, const char *worker,
                        int lease_seconds, int64_t now_ms) {
    BSON_APPEND_UTF8(doc, "_id", job->run_id);
    append_held(doc, job, message, worker, lease_seconds, now_ms);
    append_run(doc, job);
}

/* Takes over attempt job->attempt from a worker whose lease on it ran out
 * (`lease` as read): counted on the lease, and refused (left held, for the
 * scheduler's sweep to retry or fail the run) once CV_LEASE_TAKEOVERS_MAX
 * workers have taken it over: an attempt that kills every worker that runs it
 * stops being run. */
static cv_err take_over(cv_mongo *m, const cv_job *job, const bson_t *lease, const char *message,
                        const char *worker, int lease_seconds, cv_claim *claim, char *holder,
                        size_t holder_len, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, also = BSON_INITIALIZER, update = BSON_INITIALIZER, set, inc;
    const char *expires = cv_mongo_doc_str(lease, "expires_at");
    const char *holder_was = cv_mongo_doc_str(lease, "worker");
    int64_t takeovers = cv_mongo_doc_int(lease, "takeovers", 0), matched = 0;
    cv_err err;

    if (takeovers >= CV_LEASE_TAKEOVERS_MAX) {
        snprintf(holder, holder_len,
                 "%s (lease ran out at %s; taken over %lld times already: left to the "
                 "scheduler)",
                 holder_was ? holder_was : "?", expires ? expires : "?", (long long)takeovers);
        *claim = CV_CLAIM_HELD;
        return CV_OK;
    }
    /* Only the lease as read: a worker that renewed it, or another that took
     * it over first, makes this match nothing. */
    BSON_APPEND_INT32(&also, "attempt", job->attempt);
    BSON_APPEND_UTF8(&also, "state", "held");
    BSON_APPEND_UTF8(&also, "expires_at", expires ? expires : "");
    cv_mongo_filter_id(&filter, job->run_id, &also);
    bson_destroy(&also);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    append_held(&set, job, message, worker, lease_seconds, cv_time_now_ms());
    bson_append_document_end(&update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
    BSON_APPEND_INT32(&inc, "takeovers", 1);
    bson_append_document_end(&update, &inc);
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, &update, false, &matched, errbuf, errlen);
    if (!err)
        *claim = matched ? CV_CLAIM_RESUMED : claim_refused(m, job, holder, holder_len);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

/* A claim of a run that has a lease already: an earlier attempt that did not
 * end well, or this attempt held by a worker whose lease ran out (take_over()).
 * An attempt that ended for good keeps its lease "held" (cv_lease.h), so the
 * run's record is asked first: a delivery of an attempt that is over is a
 * duplicate. */
static cv_err claim_existing(cv_mongo *m, const cv_job *job, const char *message,
                             const char *worker, int lease_seconds, cv_claim *claim, char *holder,
                             size_t holder_len, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, also = BSON_INITIALIZER, update = BSON_INITIALIZER, sub, set,
           on_insert;
    bson_t *lease = NULL;
    char now[CV_TIME_RFC3339_LEN];
    int64_t now_ms = cv_time_now_ms();
    const char *state, *expires;
    bool over = false;
    cv_err err;

    if ((err = cv_runs_attempt_over(m, job->run_id, job->attempt, &over, errbuf, errlen)))
        return err;
    if (over) {
        *claim = CV_CLAIM_OVER;
        return CV_OK;
    }
    cv_time_format(now_ms, now, sizeof(now));
    err = cv_mongo_find_id(m, CV_COLL_LEASES, job->run_id, &lease, errbuf, errlen);
    if (err && err != CV_ERR_NOT_FOUND)
        return err;
    state = lease ? cv_mongo_doc_str(lease, "state") : NULL;
    expires = lease ? cv_mongo_doc_str(lease, "expires_at") : NULL;
    if (state && strcmp(state, "held") == 0 &&
        cv_mongo_doc_int(lease, "attempt", -1) == job->attempt && expires &&
        strcmp(expires, now) < 0) {
        err = take_over(m, job, lease, message, worker, lease_seconds, claim, holder, holder_len,
                        errbuf, errlen);
        bson_destroy(lease);
        return err;
    }
    bson_destroy(lease);

    /* An earlier attempt of a run that did not end (it ended in a retry, or
     * its worker died after sending the retry). */
    BSON_APPEND_DOCUMENT_BEGIN(&also, "attempt", &sub);
    BSON_APPEND_INT32(&sub, "$lt", job->attempt);
    bson_append_document_end(&also, &sub);
    append_op(&also, "state", "$ne", "done");
    cv_mongo_filter_id(&filter, job->run_id, &also);
    bson_destroy(&also);

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    append_held(&set, job, message, worker, lease_seconds, now_ms);
    BSON_APPEND_INT32(&set, "takeovers", 0);
    bson_append_document_end(&update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &on_insert);
    append_run(&on_insert, job);
    bson_append_document_end(&update, &on_insert);

    /* A retry whose lease is gone (pruned) inserts it again; a lease the
     * filter excluded (the run ended, or its attempt is held or later) makes
     * that insert collide. */
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, &update, true, NULL, errbuf, errlen);
    if (err == CV_ERR_CONFLICT) {
        err = CV_OK;
        *claim = claim_refused(m, job, holder, holder_len);
    } else if (!err) {
        *claim = CV_CLAIM_RESUMED;
    }
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_lease_claim_many(cv_mongo *m, const cv_job *const *jobs, const char *const *messages,
                           size_t n, const char *worker, int lease_seconds, cv_claim *claims,
                           char (*holders)[256], char *errbuf, size_t errlen) {
    bson_t *docs = calloc(n ? n : 1, sizeof(*docs));
    const bson_t **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    size_t *of = calloc(n ? n : 1, sizeof(*of)), nfirst = 0;
    bool *dup = calloc(n ? n : 1, sizeof(*dup));
    int64_t now_ms = cv_time_now_ms();
    cv_err err = CV_OK;

    if (!docs || !ptrs || !of || !dup) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        claims[i] = CV_CLAIM_OVER;
        holders[i][0] = '\0';
        if (jobs[i]->attempt > 1)
            continue; /* its lease exists from the first attempt */
        bson_init(&docs[nfirst]);
        first_lease(&docs[nfirst], jobs[i], messages[i], worker, lease_seconds, now_ms);
        ptrs[nfirst] = &docs[nfirst];
        of[nfirst++] = i;
    }
    /* First claims in one insert: the common case, one write for them all. */
    if (nfirst &&
        (err = cv_mongo_insert_many(m, CV_COLL_LEASES, ptrs, nfirst, dup, errbuf, errlen)))
        goto out;
    for (size_t k = 0; k < nfirst; k++)
        claims[of[k]] = dup[k] ? CV_CLAIM_HELD : CV_CLAIM_TAKEN; /* HELD: look closer below */
    for (size_t i = 0; i < n && !err; i++)
        if (jobs[i]->attempt > 1 || claims[i] == CV_CLAIM_HELD)
            err = claim_existing(m, jobs[i], messages[i], worker, lease_seconds, &claims[i],
                                 holders[i], sizeof(holders[i]), errbuf, errlen);
out:
    for (size_t k = 0; k < nfirst; k++)
        bson_destroy(&docs[k]);
    free(docs);
    free(ptrs);
    free(of);
    free(dup);
    return err;
}

cv_err cv_lease_block(cv_mongo *m, const char *run_id, int attempt, char *errbuf, size_t errlen) {
    int64_t now_ms = cv_time_now_ms();
    bson_t doc = BSON_INITIALIZER;
    cv_err err;

    BSON_APPEND_UTF8(&doc, "_id", run_id);
    BSON_APPEND_UTF8(&doc, "state", "done");
    BSON_APPEND_BOOL(&doc, "cancelled", true);
    BSON_APPEND_INT32(&doc, "attempt", attempt);
    cv_mongo_append_time(&doc, "released_at", now_ms);
    cv_retain_append_day(&doc, now_ms);
    err = cv_mongo_insert(m, CV_COLL_LEASES, &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err;
}

/* Filter of the lease `worker` holds on attempt `attempt` of the run. */
static void held_by(bson_t *filter, const char *run_id, int attempt, const char *worker) {
    bson_t also = BSON_INITIALIZER;
    BSON_APPEND_INT32(&also, "attempt", attempt);
    BSON_APPEND_UTF8(&also, "state", "held");
    BSON_APPEND_UTF8(&also, "worker", worker);
    cv_mongo_filter_id(filter, run_id, &also);
    bson_destroy(&also);
}

cv_err cv_lease_renew(cv_mongo *m, const char *run_id, int attempt, const char *worker,
                      int64_t lease_ms, bool *held, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    int64_t now = cv_time_now_ms(), matched = 0;
    cv_err err;

    held_by(&filter, run_id, attempt, worker);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    cv_mongo_append_time(&set, "heartbeat_at", now);
    cv_mongo_append_time(&set, "expires_at", now + lease_ms);
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, &update, false, &matched, errbuf, errlen);
    *held = !err && matched > 0;
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

/* Appends the $set of an ended lease: "retrying" with the next attempt due at
 * retry_at_ms (sent says whether it is on the retry topic), or "done" (ended:
 * the attempt ran to its end, rather than being taken back). */
static void append_end(bson_t *update, int64_t retry_at_ms, bool sent, bool ended, int64_t now_ms) {
    bson_t set;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "state", retry_at_ms ? "retrying" : "done");
    if (ended)
        BSON_APPEND_BOOL(&set, "ended", true);
    if (retry_at_ms) {
        cv_mongo_append_time(&set, "next_attempt_at", retry_at_ms);
        BSON_APPEND_BOOL(&set, "retry_sent", sent);
    }
    cv_mongo_append_time(&set, "released_at", now_ms);
    cv_retain_append_day(&set, now_ms); /* kept leases_days from here, once done */
    bson_append_document_end(update, &set);
}

cv_err cv_lease_release(cv_mongo *m, const char *run_id, int attempt, const char *worker,
                        int64_t retry_at_ms, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER;
    cv_err err;

    held_by(&filter, run_id, attempt, worker);
    append_end(&update, retry_at_ms, true, false, cv_time_now_ms());
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, &update, false, NULL, errbuf, errlen);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_lease_end_many(cv_mongo *m, const char *const *run_ids, const int *attempts, size_t n,
                         const char *worker, int64_t *marked, char *errbuf, size_t errlen) {
    bson_t *filters = calloc(n ? n : 1, sizeof(*filters));
    const bson_t **fptrs = calloc(n ? n : 1, sizeof(*fptrs));
    bson_t update = BSON_INITIALIZER;
    const bson_t **uptrs = calloc(n ? n : 1, sizeof(*uptrs));
    int64_t now_ms = cv_time_now_ms();
    cv_err err;

    if (!filters || !fptrs || !uptrs) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    append_end(&update, 0, false, true, now_ms);
    for (size_t i = 0; i < n; i++) {
        bson_init(&filters[i]);
        held_by(&filters[i], run_ids[i], attempts[i], worker);
        fptrs[i] = &filters[i];
        uptrs[i] = &update; /* the same for every lease */
    }
    err = cv_mongo_update_each(m, CV_COLL_LEASES, fptrs, uptrs, n, marked, errbuf, errlen);
    for (size_t i = 0; i < n; i++)
        bson_destroy(&filters[i]);
out:
    bson_destroy(&update);
    free(filters);
    free(fptrs);
    free(uptrs);
    return err;
}

cv_err cv_lease_find_expired(cv_mongo *m, int64_t before_ms, int64_t limit,
                             char after[CV_LEASE_CURSOR_LEN], bson_t **out, char *errbuf,
                             size_t errlen) {
    char before[CV_TIME_RFC3339_LEN];
    bson_t *runs = NULL, *found = bson_new();
    bson_iter_t it;
    int64_t n = 0, seen = 0;
    cv_err err;

    cv_time_format(before_ms, before, sizeof(before));
    if ((err = cv_runs_find_running(m, after, limit, &runs, errbuf, errlen)))
        goto out;
    for (bool more = bson_iter_init(&it, runs); more && bson_iter_next(&it);) {
        const uint8_t *data;
        uint32_t len;
        bson_t run, *lease = NULL;
        const char *id, *state, *expires;
        char key[24], why[256];

        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            continue;
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&run, data, len) || !(id = cv_mongo_doc_str(&run, "_id")))
            continue;
        seen++;
        snprintf(after, CV_LEASE_CURSOR_LEN, "%s", id);
        if (cv_mongo_find_id(m, CV_COLL_LEASES, id, &lease, why, sizeof(why)) != CV_OK)
            continue; /* no lease (or no answer): nothing to take back now */
        state = cv_mongo_doc_str(lease, "state");
        expires = cv_mongo_doc_str(lease, "expires_at");
        if (state && strcmp(state, "held") == 0 && expires && strcmp(expires, before) < 0) {
            snprintf(key, sizeof(key), "%lld", (long long)n++);
            BSON_APPEND_DOCUMENT(found, key, lease);
        }
        bson_destroy(lease);
    }
    if (seen < limit)
        after[0] = '\0'; /* the end of the running runs: the next call starts over */
out:
    bson_destroy(runs);
    if (err) {
        bson_destroy(found);
        found = NULL;
    }
    *out = found;
    return err;
}

cv_err cv_lease_find_unsent(cv_mongo *m, int64_t before_ms, int64_t limit, bson_t **out,
                            char *errbuf, size_t errlen) {
    char before[CV_TIME_RFC3339_LEN];
    bson_t *filter;
    cv_err err;

    cv_time_format(before_ms, before, sizeof(before));
    filter = BCON_NEW("state", BCON_UTF8("retrying"), "retry_sent", BCON_BOOL(false), "released_at",
                      "{", "$lt", BCON_UTF8(before), "}");
    err = cv_mongo_find(m, CV_COLL_LEASES, filter, NULL, limit, out, errbuf, errlen);
    bson_destroy(filter);
    return err;
}

cv_err cv_lease_take_back(cv_mongo *m, const bson_t *lease, int64_t retry_at_ms, int64_t now_ms,
                          bool *taken, char *errbuf, size_t errlen) {
    const char *id = cv_mongo_doc_str(lease, "_id");
    const char *expired = cv_mongo_doc_str(lease, "expires_at");
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, *also;
    int64_t matched = 0;
    cv_err err;

    *taken = false;
    if (!id || !expired)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "lease without _id or expires_at");
    /* Only while the lease is still the one that ran out. */
    also = BCON_NEW("attempt", BCON_INT32((int32_t)cv_mongo_doc_int(lease, "attempt", 1)), "state",
                    BCON_UTF8("held"), "expires_at", BCON_UTF8(expired));
    cv_mongo_filter_id(&filter, id, also);
    bson_destroy(also);
    append_end(&update, retry_at_ms, false, false, now_ms);
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, &update, false, &matched, errbuf, errlen);
    *taken = !err && matched > 0;
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_lease_retry_sent(cv_mongo *m, const char *run_id, int attempt, char *errbuf,
                           size_t errlen) {
    bson_t filter = BSON_INITIALIZER;
    bson_t *also = BCON_NEW("attempt", BCON_INT32(attempt - 1), "state", BCON_UTF8("retrying"));
    bson_t *update = BCON_NEW("$set", "{", "retry_sent", BCON_BOOL(true), "}");
    cv_err err;

    cv_mongo_filter_id(&filter, run_id, also);
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, update, false, NULL, errbuf, errlen);
    bson_destroy(&filter);
    bson_destroy(also);
    bson_destroy(update);
    return err;
}
