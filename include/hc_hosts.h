/*
 * hc_hosts.h - hcmd's marked block in a hosts file, so that a forward's DNS
 * name resolves to its loopback address.
 *
 *   # BEGIN hcmd: managed by hcmd; do not edit
 *   127.77.12.34	sql.corp.local	# hcmd forward db
 *   # END hcmd
 *
 * Lines outside the block are never changed. The file is replaced
 * atomically (a temporary file in the same folder, then rename); where the
 * file cannot be replaced (a bind mount) it is rewritten in place.
 */
#ifndef HC_HOSTS_H
#define HC_HOSTS_H

#include <stddef.h>

struct hc_hosts_entry {
    const char *addr;     /* e.g. "127.77.12.34" */
    const char *hostname; /* e.g. "sql.corp.local" */
    const char *forward;  /* the [forward NAME], for the comment */
};

/*
 * The new text of a hosts file: old (len bytes) without any hcmd block
 * (also one a crash left without its END line), then a block with the n
 * entries at the end (none when n is 0). Returns hc_malloc'd text with its
 * length in *out_len, or NULL when out of memory.
 */
char *hc_hosts_rewrite(const char *old, size_t len,
                       const struct hc_hosts_entry *entries, size_t n,
                       size_t *out_len);

/*
 * Rewrite the file at path with the n entries (n 0 removes the block). A
 * missing file is created (0644). Returns 0 or a libuv code with a
 * one-line reason in err.
 */
int hc_hosts_update(const char *path, const struct hc_hosts_entry *entries,
                    size_t n, char *err, size_t errlen);

#endif
