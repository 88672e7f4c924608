// The Storage SCP of CDicomNet.h on DCMTK's DcmSCP: negotiation, C-ECHO and DIMSE are DCMTK's; what is
// accepted and kept is the caller's (the callbacks).
#include <chrono>
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/dcmlayer.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/scp.h"
#include "dcmtk/oflog/oflog.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "CDicomNet.h"

namespace {

void setError(char *error, size_t size, const std::string &message) {
    if (error && size > 0) std::snprintf(error, size, "%s", message.c_str());
}

/// The transfer syntaxes Mediscope's reader decodes, preferred first when a sender proposes several.
OFList<OFString> imageTransferSyntaxes() {
    OFList<OFString> list;
    for (const char *uid : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
                            UID_BigEndianExplicitTransferSyntax, UID_DeflatedExplicitVRLittleEndianTransferSyntax,
                            UID_RLELosslessTransferSyntax, UID_JPEGProcess1TransferSyntax, UID_JPEGProcess2_4TransferSyntax,
                            UID_JPEGProcess14SV1TransferSyntax, UID_JPEGProcess14TransferSyntax,
                            UID_JPEGLSLosslessTransferSyntax, UID_JPEGLSLossyTransferSyntax,
                            UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEG2000TransferSyntax}) {
        list.push_back(uid);
    }
    return list;
}

using Clock = std::chrono::steady_clock;

/// Milliseconds from now until `when`, at least 0; rounded up, so that a wait never ends before `when`.
int64_t millisecondsUntil(Clock::time_point when) {
    return std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(when - Clock::now()).count());
}

/// How long a read of the current connection may wait. DCMTK 3.6.7 bounds each read of an association
/// request by 60 s only (then waits up to 180 s more before dropping the connection), so a request
/// trickled in a byte at a time held the listener, which takes one association at a time, indefinitely;
/// and an associated peer sending one PDU a byte at a time escaped the association's time limit, which
/// is only checked as whole commands and data chunks arrive. Here the whole request must arrive within
/// the ACSE timeout of the connection (PS3.8's ARTIM timer); once it has, no read waits longer than the
/// DIMSE timeout (the idle limit) nor past the association's time limit.
class ReadBounds {
public:
    ReadBounds(uint32_t acseSeconds, uint32_t dimseSeconds) : acseSeconds_(acseSeconds), dimseSeconds_(dimseSeconds) {}

    /// A connection was accepted: its association request is due within the ACSE timeout.
    void connected() {
        requestDue_ = Clock::now() + std::chrono::seconds(acseSeconds_);
        requestReceived_ = false;
        associationLimited_ = false;
    }
    /// The association request has arrived whole.
    void requestReceived() { requestReceived_ = true; }
    /// The association was accepted; it may last `seconds` in all (0: no limit).
    void associated(uint32_t seconds) {
        associationLimited_ = seconds > 0;
        associationDue_ = Clock::now() + std::chrono::seconds(seconds);
    }

    /// Milliseconds a read may wait now, at most `limit` (-1: no limit of the caller's; -1 back: none at all).
    int waitMilliseconds(int64_t limit) const {
        int64_t bound = -1;
        if (!requestReceived_) {
            bound = millisecondsUntil(requestDue_);
        } else {
            if (dimseSeconds_ > 0) bound = int64_t(dimseSeconds_) * 1000;
            if (associationLimited_) {
                const int64_t left = millisecondsUntil(associationDue_);
                bound = bound < 0 ? left : std::min(bound, left);
            }
        }
        if (limit >= 0) bound = bound < 0 ? limit : std::min(bound, limit);
        return bound < 0 ? -1 : int(std::min<int64_t>(bound, INT32_MAX));
    }

private:
    uint32_t acseSeconds_;
    uint32_t dimseSeconds_;
    Clock::time_point requestDue_ = Clock::now();
    Clock::time_point associationDue_ = Clock::now();
    bool requestReceived_ = false;
    bool associationLimited_ = false;
};

/// DCMTK's plain TCP connection with every wait for data bounded by `ReadBounds`.
class BoundedConnection : public DcmTCPConnection {
public:
    BoundedConnection(DcmNativeSocketType socket, const ReadBounds &bounds) : DcmTCPConnection(socket), bounds_(bounds) {}

    // A read past the bound fails as a timed-out socket would: DCMTK ends that association.
    ssize_t read(void *buffer, size_t bytes) override {
        if (!readable(bounds_.waitMilliseconds(-1))) {
            errno = ETIMEDOUT;
            return -1;
        }
        return DcmTCPConnection::read(buffer, bytes);
    }

    OFBool networkDataAvailable(int timeoutSeconds) override {
        return readable(bounds_.waitMilliseconds(int64_t(std::max(timeoutSeconds, 0)) * 1000)) ? OFTrue : OFFalse;
    }

private:
    /// Whether data (or the peer's close) is there within `milliseconds` (-1: however long it takes).
    bool readable(int milliseconds) {
        const Clock::time_point until = Clock::now() + std::chrono::milliseconds(std::max(milliseconds, 0));
        for (;;) {
            const int wait = milliseconds < 0 ? -1 : int(millisecondsUntil(until));
            pollfd socket = {getSocket(), POLLIN, 0};
            const int ready = poll(&socket, 1, wait);
            if (ready >= 0) return ready > 0;
            if (errno != EINTR) return true;  // let the read itself report the socket's error
        }
    }

    const ReadBounds &bounds_;
};

/// Gives DcmSCP a `BoundedConnection` for each connection it accepts.
class BoundedTransportLayer : public DcmTransportLayer {
public:
    explicit BoundedTransportLayer(ReadBounds &bounds) : bounds_(bounds) {}

    DcmTransportConnection *createConnection(DcmNativeSocketType socket, OFBool) override {
        bounds_.connected();
        return new BoundedConnection(socket, bounds_);
    }

private:
    ReadBounds &bounds_;
};

class StorageSCP : public DcmSCP {
public:
    StorageSCP(const dicom_scp_config &config, const dicom_scp_callbacks &callbacks, ReadBounds &bounds)
        : callbacks_(callbacks), aeTitle_(config.ae_title), incoming_(config.incoming_dir),
          maxInstanceBytes_(config.max_instance_bytes), associationSeconds_(config.association_timeout), bounds_(bounds) {}

    void notifyAssociationRequest(const T_ASC_Parameters &params, DcmSCPActionType &desiredAction) override {
        bounds_.requestReceived();
        DcmSCP::notifyAssociationRequest(params, desiredAction);
    }

    OFCondition handleIncomingCommand(T_DIMSE_Message *message, const DcmPresentationContextInfo &info) override {
        if (overTime()) {
            abortNow(DICOM_SCP_EVENT_ASSOCIATION_TOO_LONG);
            return DIMSE_ILLEGALASSOCIATION;
        }
        if (message->CommandField == DIMSE_C_STORE_RQ) return store(message->msg.CStoreRQ, info.presentationContextID);
        if (message->CommandField == DIMSE_C_ECHO_RQ) event(DICOM_SCP_EVENT_ECHO);
        return DcmSCP::handleIncomingCommand(message, info);
    }

    OFBool checkCalledAETitleAccepted(const OFString &calledAE) override { return calledAE == aeTitle_.c_str(); }

    OFBool checkCallingAETitleAccepted(const OFString &callingAE) override {
        return callbacks_.accept(callbacks_.context, callingAE.c_str(), getPeerIP().c_str()) != 0;
    }

    void notifyAssociationAcknowledge() override {
        associationStarted_ = Clock::now();
        bounds_.associated(associationSeconds_);
        event(DICOM_SCP_EVENT_ASSOCIATION_ACCEPTED);
    }

    // Called as each PDV of a data set arrives: an instance past the size limit, or an association past
    // its time limit, is aborted mid-stream instead of being written to the end.
    void notifyRECEIVEProgress(const unsigned long byteCount) override {
        if (aborting_) return;
        if (uint64_t(byteCount) > maxInstanceBytes_) {
            abortNow(DICOM_SCP_EVENT_INSTANCE_TOO_LARGE);
        } else if (overTime()) {
            abortNow(DICOM_SCP_EVENT_ASSOCIATION_TOO_LONG);
        }
    }
    void notifyAbortRequest() override { event(DICOM_SCP_EVENT_ASSOCIATION_ABORTED); }
    // A read cut at the association's time limit ends it as too long, not as a failure of the peer's.
    void notifyDIMSEError(const OFCondition &) override {
        event(overTime() ? DICOM_SCP_EVENT_ASSOCIATION_TOO_LONG : DICOM_SCP_EVENT_ASSOCIATION_ABORTED);
    }
    OFBool stopAfterConnectionTimeout() override { return callbacks_.should_stop(callbacks_.context) != 0; }
    OFBool stopAfterCurrentAssociation() override { return callbacks_.should_stop(callbacks_.context) != 0; }

private:
    OFCondition store(T_DIMSE_C_StoreRQ &request, T_ASC_PresentationContextID presentationID) {
        const std::string path = incoming_ + "/" + std::to_string(getpid()) + "-" + std::to_string(++received_) + ".part";
        aborting_ = false;
        OFCondition received = receiveSTORERequest(request, presentationID, OFString(path.c_str()));
        if (received.bad() || aborting_) {
            unlink(path.c_str());
            event(DICOM_SCP_EVENT_RECEIVE_FAILED);
            return received;
        }
        Uint16 status = 0xA700;  // Refused: Out of Resources
        struct stat info;
        if (stat(path.c_str(), &info) == 0 && uint64_t(info.st_size) <= maxInstanceBytes_) {
            status = callbacks_.stored(callbacks_.context, path.c_str(), request.AffectedSOPClassUID,
                                       request.AffectedSOPInstanceUID, getPeerAETitle().c_str(), getPeerIP().c_str());
        }
        unlink(path.c_str());  // kept only if the callback moved it
        return sendSTOREResponse(presentationID, request, status);
    }

    void event(int kind) {
        if (callbacks_.event) callbacks_.event(callbacks_.context, kind);
    }

    bool overTime() const {
        return associationSeconds_ > 0
            && Clock::now() - associationStarted_ >= std::chrono::seconds(associationSeconds_);
    }

    // A-ABORT to the peer; DcmSCP drops the association once the receive in progress returns its error.
    void abortNow(int why) {
        aborting_ = true;
        event(why);
        abortAssociation();
    }

    dicom_scp_callbacks callbacks_;
    std::string aeTitle_;
    std::string incoming_;
    uint64_t maxInstanceBytes_;
    uint32_t associationSeconds_;
    Clock::time_point associationStarted_ = Clock::now();
    bool aborting_ = false;
    uint64_t received_ = 0;
    ReadBounds &bounds_;
};

}  // namespace

extern "C" int dicom_scp_run(const dicom_scp_config *config, const dicom_scp_callbacks *callbacks, char *error, size_t error_size) {
    if (!config || !callbacks || !callbacks->accept || !callbacks->stored || !callbacks->should_stop || !config->ae_title
        || !config->incoming_dir || config->port == 0) {
        setError(error, error_size, "the listener's configuration is incomplete");
        return -1;
    }
    // 0 would make every request late (and DCMTK reads 0 as its own defaults elsewhere).
    if (config->acse_timeout < 1 || config->acse_timeout > 86400 || config->dimse_timeout < 1 || config->dimse_timeout > 86400) {
        setError(error, error_size, "the listener's ACSE and DIMSE timeouts must be 1 to 86400 seconds");
        return -1;
    }
    try {
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
        if (mkdir(config->incoming_dir, 0700) != 0 && errno != EEXIST) {
            setError(error, error_size, std::string("cannot create ") + config->incoming_dir + ": " + std::strerror(errno));
            return -1;
        }
        // Declared before the SCP, which holds the layer (not owning it) until it is destroyed.
        ReadBounds bounds(config->acse_timeout, config->dimse_timeout);
        BoundedTransportLayer layer(bounds);
        StorageSCP scp(*config, *callbacks, bounds);
        scp.getConfig().setTransportLayer(&layer);
        scp.setPort(config->port);
        scp.setAETitle(config->ae_title);
        scp.setMaxReceivePDULength(config->max_pdu);
        scp.setACSETimeout(config->acse_timeout);
        scp.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
        scp.setDIMSETimeout(config->dimse_timeout);
        scp.setConnectionBlockingMode(DUL_NOBLOCK);
        scp.setConnectionTimeout(1);
        scp.setHostLookupEnabled(OFFalse);
        const OFList<OFString> images = imageTransferSyntaxes();
        OFList<OFString> verification;
        verification.push_back(UID_LittleEndianExplicitTransferSyntax);
        verification.push_back(UID_LittleEndianImplicitTransferSyntax);
        OFCondition added = scp.addPresentationContext(UID_VerificationSOPClass, verification);
        for (int i = 0; added.good() && i < numberOfDcmImageSOPClassUIDs; ++i) {
            added = scp.addPresentationContext(dcmImageSOPClassUIDs[i], images);
        }
        if (added.bad()) {
            setError(error, error_size, std::string("cannot set up the presentation contexts: ") + added.text());
            return -1;
        }
        OFCondition result = scp.listen();
        if (result == NET_EC_StopAfterConnectionTimeout || result == NET_EC_StopAfterAssociation || result.good()) return 0;
        setError(error, error_size, std::string("the DICOM listener on port ") + std::to_string(config->port) + " stopped: " + result.text());
        return -1;
    } catch (const std::exception &e) {
        setError(error, error_size, std::string("the DICOM listener failed: ") + e.what());
    } catch (...) {
        setError(error, error_size, "the DICOM listener failed");
    }
    return -1;
}
