/*
 * cv_group.h - inserts into one collection, grouped: threads that insert at
 * the same moment share one unordered insert_many. The first thread to come
 * writes what has gathered while the others wait; whoever comes during that
 * write is written by the next one. Nothing waits for a batch to fill, so a
 * lone insert costs what cv_mongo_insert() does.
 *
 * For hot paths that insert one small document per request (the API's run
 * records): on FerretDB one statement of up to 100 documents costs little more
 * than one of a single document.
 *
 * Every function may be called from any thread.
 */
#ifndef CV_GROUP_H
#define CV_GROUP_H

#include "cv_err.h"
#include "cv_mongo.h"

typedef struct cv_group cv_group;

/* Groups inserts into `collection` (copied) through m (not owned), at most
 * max_batch documents a write (1 to 100). NULL on NOMEM. */
cv_group *cv_group_new(cv_mongo *m, const char *collection, size_t max_batch);

/* Call once no thread inserts any more. Accepts NULL. */
void cv_group_destroy(cv_group *g);

/* Inserts doc (not taken over) and returns when it is written: CV_OK,
 * CV_ERR_CONFLICT if its _id exists, or the error of the write it was part of. */
cv_err cv_group_insert(cv_group *g, const bson_t *doc, char *errbuf, size_t errlen);

#endif
