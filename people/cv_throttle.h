/*
 * cv_throttle.h - failed logins slowed down: by address, and by name from an
 * address.
 *
 * Each key (the address; the name with the address) counts its failed
 * logins. The first CV_THROTTLE_FREE_PAIR failures of a name from one
 * address (CV_THROTTLE_FREE_ADDRESS of an address over all names) cost
 * nothing; after them each attempt waits 1 s, then 2, 4, ... after the last
 * failure, up to CV_THROTTLE_WINDOW_MS (15 minutes, the lockout window). A
 * key forgets its failures CV_THROTTLE_WINDOW_MS after the last one, and a
 * successful login forgets the name's failures from that address.
 *
 * A name is never locked out everywhere: failures from one address slow that
 * address only, so an attacker cannot keep the user out from their own
 * addresses, and one who spreads over many addresses meets each address's
 * own limit. Attempts refused while waiting are not counted, so hammering
 * does not extend the wait.
 *
 * The counts are documents of `login_failures`, shared by every API replica.
 * Two attempts at the same instant may both pass the check before either
 * failure is counted; password hashing (at most two at once per process,
 * cv_credential.h) bounds what that gives away.
 *
 * Any thread; nothing returned needs freeing.
 */
#ifndef CV_THROTTLE_H
#define CV_THROTTLE_H

#include "cv_err.h"
#include "cv_mongo.h"

#include <stdint.h>

#define CV_THROTTLE_FREE_PAIR 5
#define CV_THROTTLE_FREE_ADDRESS 20
#define CV_THROTTLE_WINDOW_MS (15 * 60 * INT64_C(1000))

/* How long (ms) a login of name from address must wait at now_ms: 0 when
 * it may go ahead. */
cv_err cv_throttle_wait(cv_mongo *m, const char *name, const char *address, int64_t now_ms,
                        int64_t *wait_ms, char *errbuf, size_t errlen);

/* Counts a failed login of name from address at now_ms. */
cv_err cv_throttle_failed(cv_mongo *m, const char *name, const char *address, int64_t now_ms,
                          char *errbuf, size_t errlen);

/* Forgets the failures of name from address (a login succeeded). */
cv_err cv_throttle_passed(cv_mongo *m, const char *name, const char *address, char *errbuf,
                          size_t errlen);

/* The wait after `failures` failures of a key allowed `free` of them, the
 * last at last_ms, at now_ms (pure: the rule above, for the unit tests). */
int64_t cv_throttle_delay(int64_t failures, int64_t free, int64_t last_ms, int64_t now_ms);

#endif
