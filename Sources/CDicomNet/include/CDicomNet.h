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
 * Limits: `max_pdu` (bytes, receive), `acse_timeout` and `dimse_timeout` (seconds: an association idle
 * that long is aborted), `association_timeout` (seconds in all), the associate PDU size limit (DCMTK's
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
    /** Seconds to wait for an association request and its release (ACSE). */
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

#ifdef __cplusplus
}
#endif

#endif
