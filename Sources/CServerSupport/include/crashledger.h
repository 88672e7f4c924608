/* The crash ledger: which uploaded files and which clients were busy in a worker that died. One
 * shared anonymous mapping, separate from the scoreboard, that the master creates before forking.
 *
 * Two tables of MS_LEDGER_ENTRIES entries each (files: a prefix of the SHA-256 of the file; clients:
 * a hash of the account or the address) and a row of counters. Keys only, never patient data: a key
 * is a 64-bit number, 0 means "free".
 *
 * Ownership: only the master writes entries (it charges a crash when it reaps a worker that died busy
 * with a request, and forgets everything on reload). Anyone reads them. Each entry is a seqlock: the
 * writer makes its sequence odd, writes the fields, makes it even again; a reader retries until it
 * read the same even sequence before and after, so it never sees half an entry. Every field is a
 * lock-free C11 atomic. Counters may be added to by any process. Functions returning int give 0 (or
 * an index), or -1 with errno EINVAL for a table, index or counter out of range. */
#ifndef MS_CRASHLEDGER_H
#define MS_CRASHLEDGER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { MS_LEDGER_ENTRIES = 256 };

enum ms_ledger_table {
    MS_LEDGER_FILES = 0,     /* content keys: the SHA-256 of an uploaded file, first 8 bytes */
    MS_LEDGER_CLIENTS = 1,   /* client keys: a signed-in account, or an address */
    MS_LEDGER_TABLE_COUNT
};

/* One entry as read or written whole. */
typedef struct ms_ledger_entry {
    int64_t key;               /* 0: the entry is free */
    int64_t crashes;           /* crashes charged to the key (clients: since `first_ns`) */
    int64_t first_ns;          /* ms_now_ns() of the first of them */
    int64_t last_ns;           /* and of the latest */
    int64_t refused_until_ns;  /* requests for the key are refused before this (0: not refused) */
    int64_t cause;             /* what ended the latest one, as the Swift side encodes it */
} ms_ledger_entry;

enum ms_ledger_counter {
    MS_LEDGER_REFUSED_FILES = 0,       /* requests refused for a file that crashed a worker before */
    MS_LEDGER_REFUSED_CLIENTS,         /* requests refused for a client over its crash limit */
    MS_LEDGER_CRASH_LOOP,              /* 1 while the master backs off a crash loop, else 0 */
    MS_LEDGER_CRASH_LOOP_SINCE_UNIX,   /* when the current crash loop began (seconds since the epoch) */
    MS_LEDGER_CRASH_LOOPS,             /* crash loops entered since the master started */
    MS_LEDGER_RESPAWN_DELAY_MS,        /* the longest back-off the master applies now */
    MS_LEDGER_COUNTER_COUNT
};

typedef struct ms_crash_ledger ms_crash_ledger;

/* Maps a zeroed ledger (every entry free, every counter 0). NULL with errno on failure. */
ms_crash_ledger *ms_ledger_create(void);
/* Unmaps the ledger in this process. NULL is ignored. */
void ms_ledger_destroy(ms_crash_ledger *ledger);

/* Reads entry `index` of `table` whole into *out. -1 with EINVAL out of range, or EAGAIN when a writer
 * held the entry for too long (only if the master died while writing). */
int ms_ledger_read(const ms_crash_ledger *ledger, int table, int index, ms_ledger_entry *out);
/* Master only: replaces entry `index` of `table` with *entry (key 0 frees it). */
int ms_ledger_write(ms_crash_ledger *ledger, int table, int index, const ms_ledger_entry *entry);
/* The index of the entry holding `key` (not 0) in `table`, its content in *out; -1 when none holds it
 * (errno ENOENT) or on a bad argument (EINVAL). */
int ms_ledger_find(const ms_crash_ledger *ledger, int table, int64_t key, ms_ledger_entry *out);

/* One counter: load into *value, add `delta`, or store `value`. */
int ms_ledger_counter_load(const ms_crash_ledger *ledger, int counter, int64_t *value);
int ms_ledger_counter_add(ms_crash_ledger *ledger, int counter, int64_t delta);
int ms_ledger_counter_store(ms_crash_ledger *ledger, int counter, int64_t value);

#ifdef __cplusplus
}
#endif

#endif
