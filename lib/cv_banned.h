/*
 * cv_banned.h - functions this project does not call, turned into build
 * errors (the idea of git's banned.h). Each has a bounded or reentrant
 * replacement:
 *
 *   strcpy, strcat, strncpy, strncat   snprintf, or memcpy with a known length
 *   sprintf, vsprintf                  snprintf, vsnprintf
 *   strtok, strtok_r                   strchr, strcspn (no hidden state)
 *   atoi, atol, atoll                  strtol, strtoll, checking the end and errno
 *   gmtime, localtime, ctime, asctime  gmtime_r, localtime_r (no shared buffer)
 *   gets, tmpnam, mktemp               fgets, mkstemp
 *
 * Every .c file of the product includes it last, after the system headers
 * (whose declarations it would rename otherwise); scripts/layers-check makes
 * sure. A call then fails to compile with an undeclared
 * sorry_<name>_is_a_banned_function.
 */
#ifndef CV_BANNED_H
#define CV_BANNED_H

#define CV_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) CV_BANNED(strcpy)
#undef strcat
#define strcat(x, y) CV_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) CV_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) CV_BANNED(strncat)
#undef sprintf
#define sprintf(...) CV_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) CV_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) CV_BANNED(strtok)
#undef strtok_r
#define strtok_r(x, y, z) CV_BANNED(strtok_r)
#undef atoi
#define atoi(x) CV_BANNED(atoi)
#undef atol
#define atol(x) CV_BANNED(atol)
#undef atoll
#define atoll(x) CV_BANNED(atoll)
#undef gmtime
#define gmtime(t) CV_BANNED(gmtime)
#undef localtime
#define localtime(t) CV_BANNED(localtime)
#undef ctime
#define ctime(t) CV_BANNED(ctime)
#undef asctime
#define asctime(t) CV_BANNED(asctime)
#undef gets
#define gets(s) CV_BANNED(gets)
#undef tmpnam
#define tmpnam(s) CV_BANNED(tmpnam)
#undef mktemp
#define mktemp(s) CV_BANNED(mktemp)

#endif
