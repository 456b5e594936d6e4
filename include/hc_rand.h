/*
 * hc_rand.h - random bytes from the system (getrandom), and GUIDs.
 */
#ifndef HC_RAND_H
#define HC_RAND_H

#include <stddef.h>

/* Fill buf with len random bytes; aborts if the system has none to give. */
void hc_random(void *buf, size_t len);
/* A lower-case GUID in D format (128 random bits, version 4). */
void hc_guid(char out[37]);

#endif
