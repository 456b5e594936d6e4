/*
 * hc_notify.h - systemd's notify protocol (Type=notify), spoken directly:
 * one datagram to $NOTIFY_SOCKET per state change. Does nothing when the
 * variable is not set, so the daemons behave the same outside systemd.
 */
#ifndef HC_NOTIFY_H
#define HC_NOTIFY_H

#include <stdint.h>

/* Send state, e.g. "READY=1\nSTATUS=...". Returns 0, or -1 (not fatal). */
int hc_notify(const char *state);
/*
 * The watchdog interval systemd asks for ($WATCHDOG_USEC, for this
 * process), in milliseconds; 0 when there is none.
 */
uint64_t hc_notify_watchdog_ms(void);

#endif
