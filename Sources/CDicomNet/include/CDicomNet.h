/* CDicomNet: the plain C API of Mediscope's DICOM listener over DCMTK's dcmnet (Debian's libdcmtk-dev).
 *
 * One Storage SCP (PS3.4 Annex B) with the Verification service (C-ECHO), on DCMTK's DcmSCP: one
 * association at a time, on every address of `port` (DCMTK 3.6.7 cannot bind one address: the peer
 * check and the firewall say who may talk to it). The C code makes no decision of its own: who may
 * associate, whether a received instance is kept and with which status, and when to stop are the
 * callbacks'.
 *
 * Negotiation: the called AE title must be `ae_title`; the calling AE title and the peer's address go to
 * `accept` (0 refuses: A-ASSOCIATE-RJ, "calling AE title not recognized"). Every image storage SOP class
 * DCMTK knows (dcmImageSOPClassUIDs) is offered with the transfer syntaxes Mediscope's reader decodes, and
 * Verification; any other SOP class is refused per presentation context (the sender sees it rejected).
 *
 * C-STORE: the data set is written as received (bit-preserving, with a File Meta Information naming the
 * presentation context's transfer syntax) to a new file in `incoming_dir`, never held whole in memory;
 * then `stored` gets its path and returns the DIMSE status to answer (0x0000 only once the instance is
 * durable: the callback's job). The file is removed after the callback unless the callback moved it.
 * An instance whose data set could not be received (a cut connection, a malformed PDU) is removed and
 * its association ends; the listener goes on with the next.
 *
 * Limits: `max_pdu` (bytes, receive), `acse_timeout` (seconds for the whole association request from
 * the connection on, however it trickles in), `dimse_timeout` (seconds any later read may wait: an
 * association idle that long ends; both 1...86400, else dicom_scp_run refuses to start),
 * `association_timeout` (seconds in all, however slowly the data trickles), the associate PDU size limit (DCMTK's
 * 1 MB default), and `max_instance_bytes`, checked as an instance arrives (A-ABORT once it grows past). Between
 * associations and once a second while none comes, `should_stop` decides whether `dicom_scp_run` returns.
 *
 * Errors: dicom_scp_run returns 0 when asked to stop, else -1 with a message in `error` (the port is
 * taken, the incoming folder cannot be written). DCMTK's own logging is switched off (it could print
 * patient data at debug level); nothing is written to stderr.
 */
#ifndef CDICOMNET_H
#define CDICOMNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** How the listener is set up. Strings are copied; they need to live only during dicom_scp_run's start. */
typedef struct dicom_scp_config {
    /** TCP port (1...65535). */
    uint16_t port;
    /** The AE title callers must call (1...16 characters). */
    const char *ae_title;
    /** Folder where received instances are written before `stored` decides (created if missing). */
    const char *incoming_dir;
    /** Largest PDU received, in bytes (4096...131072 is usual). */
    uint32_t max_pdu;
    /** Seconds the whole association request may take from the connection on, and to wait for its release (ACSE). */
    uint32_t acse_timeout;
    /** Seconds a DIMSE message may take to arrive: an association idle longer is aborted. */
    uint32_t dimse_timeout;
    /** Largest instance kept, in bytes: one growing past it is aborted (A-ABORT) as it arrives. */
    uint64_t max_instance_bytes;
    /** Seconds an association may last in all (0: no limit); past it, it is aborted. */
    uint32_t association_timeout;
} dicom_scp_config;

/** What the listener asks the caller. `context` is passed back unchanged. */
typedef struct dicom_scp_callbacks {
    void *context;
    /** Whether `calling_ae` at `peer_address` may associate: nonzero to accept. */
    int (*accept)(void *context, const char *calling_ae, const char *peer_address);
    /** A received instance at `path` (a PS3.10 file), for the SOP class and instance the C-STORE request
     *  names, from `calling_ae`: returns the C-STORE response status. */
    uint16_t (*stored)(void *context, const char *path, const char *sop_class_uid, const char *sop_instance_uid,
                       const char *calling_ae, const char *peer_address);
    /** Nonzero when the listener should return (checked between associations, at least once a second). */
    int (*should_stop)(void *context);
    /** Something worth counting or logging happened: `event` is one of the DICOM_SCP_EVENT_* values. */
    void (*event)(void *context, int event);
} dicom_scp_callbacks;

/** Events reported through dicom_scp_callbacks.event. */
enum {
    /** An association was accepted. */
    DICOM_SCP_EVENT_ASSOCIATION_ACCEPTED = 1,
    /** The peer aborted, or the association ended with a network or protocol error. */
    DICOM_SCP_EVENT_ASSOCIATION_ABORTED = 2,
    /** A C-STORE's data set could not be received (removed; the association ends). */
    DICOM_SCP_EVENT_RECEIVE_FAILED = 3,
    /** A C-ECHO was answered. */
    DICOM_SCP_EVENT_ECHO = 4,
    /** An instance grew past `max_instance_bytes` while it arrived: the association was aborted. */
    DICOM_SCP_EVENT_INSTANCE_TOO_LARGE = 5,
    /** The association lasted past `association_timeout`: it was aborted. */
    DICOM_SCP_EVENT_ASSOCIATION_TOO_LONG = 6,
};

/** Runs the listener until `should_stop` says so (returns 0) or it cannot listen (-1, message in `error`). */
int dicom_scp_run(const dicom_scp_config *config, const dicom_scp_callbacks *callbacks, char *error, size_t error_size);

/* ---------------------------------------------------------------------------------------------------
 * Storage SCU (PS3.4 Annex B, the sending side) and C-ECHO, on DCMTK's association and DIMSE calls.
 *
 * dicom_scu_store sends objects (whole PS3.10 files in memory) in order over ONE association, waiting
 * for each C-STORE response before the next. All objects are parsed first (and held parsed, about their
 * size again, each freed once sent): if one cannot be, nothing is sent (DICOM_SCU_BAD_INPUT). A file cut
 * exactly between two top-level elements is a valid, shorter file (PS3.10 records no data set length) and
 * goes as such; one cut anywhere else is refused. Proposed: per SOP class, one presentation context for the native transfer
 * syntaxes (the objects' own first, then Explicit and Implicit VR Little Endian: DCMTK converts between
 * them losslessly), and one per encapsulated (compressed) transfer syntax offering only that one (no
 * codec is linked: compressed pixel data is sent as it is or not at all). At most 128 such pairs a call.
 *
 * Encoding: the data set's values are sent as parsed; DCMTK re-encodes it in the accepted transfer
 * syntax with explicit-length sequences and items, without Data Set Trailing Padding, and with group
 * lengths recalculated where present. A file DCMTK wrote with its defaults arrives byte for byte.
 *
 * Timeouts: `connect_timeout` for the TCP connect (DCMTK 3.6.7 has only a process-wide setting,
 * dcmConnectionTimeout: each call sets it, so concurrent calls in one process should use the same value);
 * `acse_timeout` for the A-ASSOCIATE and A-RELEASE responses, and after an A-ABORT of ours for the peer to
 * close the connection (DCMTK's ARTIM timer: a missing C-STORE response costs dimse_timeout + acse_timeout);
 * `dimse_timeout` for each C-STORE or C-ECHO response and for each write the peer must take (SO_SNDTIMEO on
 * the association's socket). A peer that keeps answering slowly is not bounded in all. Host names are
 * resolved with the system resolver, which has no timeout of its own here; IPv6 literals are not accepted
 * (DCMTK 3.6.7 parses "host:port").
 *
 * Errors: no message holds patient data (no UID or value of an object: objects are named by position and
 * SOP class). DCMTK's logging is off. No C++ exception leaves these functions. DCMTK ignores SIGPIPE in
 * the whole process from the first association on (as the listener does).
 * ------------------------------------------------------------------------------------------------- */

/** Where to send and how long to wait. Strings are read during the call only. */
typedef struct dicom_scu_config {
    /** IPv4 address or host name (at most 57 characters). */
    const char *host;
    /** TCP port (1...65535). */
    uint16_t port;
    /** Our AE title (1...16 characters). */
    const char *calling_ae;
    /** The destination's AE title (1...16 characters). */
    const char *called_ae;
    /** Largest PDU we receive, announced to the peer (4096...131072 bytes). */
    uint32_t max_pdu;
    /** Seconds for the TCP connect (1...86400). */
    uint32_t connect_timeout;
    /** Seconds to wait for the association's acceptance or rejection, for its release, and after an abort
     *  for the peer to close the connection (1...86400). */
    uint32_t acse_timeout;
    /** Seconds to wait for each C-STORE/C-ECHO response and for the peer to take each write (1...86400). */
    uint32_t dimse_timeout;
} dicom_scu_config;

/** One object to send: a whole PS3.10 file (128-byte preamble, "DICM", File Meta Information, data set).
 *  Borrowed: the bytes must stay valid during the call only. */
typedef struct dicom_scu_object {
    const uint8_t *data;
    size_t size;
} dicom_scu_object;

/** What became of one object. `status` is the C-STORE response's DIMSE status when `outcome` is
 *  DICOM_SCU_RESPONDED, else DICOM_SCU_NO_STATUS. Of the statuses, 0x0000 is Success and the warnings
 *  (0xB000 coercion of data elements, 0xB006 elements discarded, 0xB007 data set does not match SOP
 *  class; PS3.7's general warnings 0x0001, 0x0107, 0x0116) mean stored too; anything else is a failure
 *  (0xA7xx out of resources, 0xA9xx data set does not match SOP class, 0xCxxx cannot understand,
 *  0x0122 SOP class not supported, 0x0124 not authorized, ...). */
typedef struct dicom_scu_result {
    int32_t outcome;
    uint16_t status;
} dicom_scu_result;

/** dicom_scu_result.outcome. */
enum {
    /** The peer answered the C-STORE: `status` says how. */
    DICOM_SCU_RESPONDED = 0,
    /** Not sent: the peer accepted no presentation context for its SOP class. */
    DICOM_SCU_SOP_CLASS_NOT_ACCEPTED = 1,
    /** Not sent: the peer accepted its SOP class only in a transfer syntax it cannot be converted to
     *  losslessly here (a compressed object, an uncompressed one offered compressed syntaxes only). */
    DICOM_SCU_TRANSFER_SYNTAX_NOT_ACCEPTED = 2,
    /** Not sent: the association ended before its turn (an earlier object got no response), or the call
     *  failed before any association (then the return value says why). */
    DICOM_SCU_NOT_REACHED = 3,
    /** Sent, wholly or partly, but no response came (timeout, abort, closed connection): whether the peer
     *  kept it is unknown. The association ended there (aborted by us or the peer); the objects after it
     *  are DICOM_SCU_NOT_REACHED. */
    DICOM_SCU_NO_RESPONSE = 4,
};

/** dicom_scu_result.status when there was no response (0xFFFF is no status PS3.7 defines). */
#define DICOM_SCU_NO_STATUS 0xFFFF

/** Return values of dicom_scu_store and dicom_scu_echo. */
enum {
    /** The association was made; each object's result says what became of it (dicom_scu_echo: the peer
     *  answered C-ECHO with Success). */
    DICOM_SCU_OK = 0,
    /** No TCP connection: refused, timed out (`connect_timeout`), unknown host, no route. */
    DICOM_SCU_UNREACHABLE = -1,
    /** A-ASSOCIATE-RJ, permanent (result 1): e.g. called or calling AE title not recognized. */
    DICOM_SCU_REJECTED_PERMANENT = -2,
    /** A-ASSOCIATE-RJ, transient (result 2): e.g. temporary congestion; worth retrying later. */
    DICOM_SCU_REJECTED_TRANSIENT = -3,
    /** An object is not a PS3.10 file DCMTK can parse, or lacks its SOP Class/Instance UID: nothing sent. */
    DICOM_SCU_BAD_INPUT = -4,
    /** Anything else: a bad configuration, a peer that took the connection but never answered the
     *  association request (`acse_timeout`) or closed it, a C-ECHO that failed. */
    DICOM_SCU_FAILED = -5,
};

/** Sends `count` objects in order over one association and writes what became of object i to
 *  `results[i]` (caller-allocated, `count` entries; valid whatever the return value: DICOM_SCU_NOT_REACHED
 *  for every object when no association was made). Returns DICOM_SCU_OK when an association was made (even
 *  if some objects were not sent, or failed), else a negative DICOM_SCU_* code. `error` (may be NULL)
 *  receives a sentence: why the call failed; on DICOM_SCU_OK why the association broke, else the first
 *  object not sent and why, else that the release was not confirmed ("" when every object got a response
 *  and the association was released). */
int dicom_scu_store(const dicom_scu_config *config, const dicom_scu_object *objects, size_t count,
                    dicom_scu_result *results, char *error, size_t error_size);

/** C-ECHO (Verification) over an association of its own: DICOM_SCU_OK when the peer answered Success,
 *  else a negative DICOM_SCU_* code with a sentence in `error` (may be NULL). */
int dicom_scu_echo(const dicom_scu_config *config, char *error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
