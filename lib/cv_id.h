/*
 * cv_id.h - identifiers. Every object Convutell creates (connection, project, job,
 * run, event) is named by a random UUID version 4 in its lower-case text form.
 * Random ids let the API, the workers and other systems mint ids independently.
 */
#ifndef CV_ID_H
#define CV_ID_H

#include <stdbool.h>
#include <stddef.h>

#define CV_ID_LEN 37 /* 36 characters plus NUL */

/* Writes a new random UUID into buf (at least CV_ID_LEN bytes). Any thread.
 * Returns 0, or -1 if the kernel's random source failed. */
int cv_id_new(char *buf, size_t len);

/* True if `text` is a UUID in canonical 8-4-4-4-12 hex form (either case). */
bool cv_id_valid(const char *text);

#endif
