// The Storage SCU and C-ECHO of CDicomNet.h on DCMTK's association (ASC_*) and DIMSE API: the same calls
// storescu makes. Not DcmSCU: in DCMTK 3.6.7 it keeps the association parameters private, so an
// A-ASSOCIATE-RJ's result, source and reason could not be told apart.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/oflog/oflog.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <vector>

#include "CDicomNet.h"

namespace {

void setError(char *error, size_t size, const std::string &message) {
    if (error && size > 0) std::snprintf(error, size, "%s", message.c_str());
}

/// DCMTK's logging off once per process: at debug level it prints data sets, so patient data.
void silenceDCMTK() {
    static std::once_flag once;
    std::call_once(once, [] { OFLog::configure(OFLogger::OFF_LOG_LEVEL); });
}

const unsigned maxSeconds = 86400;

/// Whether `title` is an AE title DICOM allows: 1...16 characters of the default repertoire, no
/// backslash or control character, not only spaces.
bool validAETitle(const char *title) {
    if (!title) return false;
    const size_t length = std::strlen(title);
    if (length == 0 || length > 16) return false;
    bool nonSpace = false;
    for (size_t i = 0; i < length; ++i) {
        const unsigned char c = static_cast<unsigned char>(title[i]);
        if (c < 0x20 || c > 0x7e || c == '\\') return false;
        if (c != ' ') nonSpace = true;
    }
    return nonSpace;
}

/// The configuration's faults in words, or "" when it is usable.
std::string checkConfig(const dicom_scu_config *config) {
    if (!config) return "the configuration is missing";
    if (!config->host || !*config->host) return "the host is missing";
    // DCMTK 3.6.7 parses "host:port" with sscanf into 128 bytes and keeps 63 of it: no IPv6 literal
    // (the colons), and a short name.
    if (std::strlen(config->host) > 57 || std::strchr(config->host, ':')) {
        return "the host must be an IPv4 address or a host name of at most 57 characters (DCMTK 3.6.7 takes no IPv6 literal)";
    }
    for (const char *c = config->host; *c; ++c) {
        const unsigned char byte = static_cast<unsigned char>(*c);
        if (byte <= 0x20 || byte > 0x7e) return "the host holds a space or control character";
    }
    if (config->port == 0) return "the port must be 1...65535";
    if (!validAETitle(config->calling_ae)) return "the calling AE title must be 1 to 16 printable characters without a backslash";
    if (!validAETitle(config->called_ae)) return "the called AE title must be 1 to 16 printable characters without a backslash";
    if (config->max_pdu < ASC_MINIMUMPDUSIZE || config->max_pdu > ASC_MAXIMUMPDUSIZE) {
        return "the maximum PDU must be " + std::to_string(ASC_MINIMUMPDUSIZE) + "..." + std::to_string(ASC_MAXIMUMPDUSIZE) + " bytes";
    }
    if (config->connect_timeout < 1 || config->connect_timeout > maxSeconds || config->acse_timeout < 1
        || config->acse_timeout > maxSeconds || config->dimse_timeout < 1 || config->dimse_timeout > maxSeconds) {
        return "each timeout must be 1..." + std::to_string(maxSeconds) + " seconds";
    }
    return "";
}

/// What an A-ASSOCIATE-RJ said, in words.
std::string describeRejection(const T_ASC_RejectParameters &rejection) {
    std::string text = "the association was rejected (";
    if (rejection.result == ASC_RESULT_REJECTEDTRANSIENT) text += "transient";
    else if (rejection.result == ASC_RESULT_REJECTEDPERMANENT) text += "permanent";
    else text += "result " + std::to_string(int(rejection.result));
    switch (rejection.source) {
    case ASC_SOURCE_SERVICEUSER: text += ", by the called application): "; break;
    case ASC_SOURCE_SERVICEPROVIDER_ACSE_RELATED: text += ", by the peer's ACSE service provider): "; break;
    case ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED: text += ", by the peer's presentation service provider): "; break;
    default: text += ", source " + std::to_string(int(rejection.source)) + "): "; break;
    }
    switch (rejection.reason) {
    case ASC_REASON_SU_NOREASON: case ASC_REASON_SP_ACSE_NOREASON: text += "no reason given"; break;
    case ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED: text += "application context name not supported"; break;
    case ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED: text += "calling AE title not recognized"; break;
    case ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED: text += "called AE title not recognized"; break;
    case ASC_REASON_SP_ACSE_PROTOCOLVERSIONNOTSUPPORTED: text += "protocol version not supported"; break;
    case ASC_REASON_SP_PRES_TEMPORARYCONGESTION: text += "temporary congestion"; break;
    case ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED: text += "local limit exceeded"; break;
    default: {
        char code[16];
        std::snprintf(code, sizeof code, "0x%04x", unsigned(rejection.reason));
        text += std::string("reason ") + code;
    }
    }
    return text;
}

/// A SOP class's name when DCMTK knows it, else its UID (a SOP class UID names no patient).
std::string sopClassName(const std::string &uid) {
    const char *name = dcmFindNameOfUID(uid.c_str(), nullptr);
    return name ? std::string(name) : uid;
}

/// The socket of a DCMTK transport connection. DcmTransportConnection::getSocket is protected in 3.6.7; a
/// derived class may name it, and the pointer to that member applies to any connection.
struct SocketOf : DcmTransportConnection {
    static DcmNativeSocketType get(DcmTransportConnection &connection) {
        DcmNativeSocketType (DcmTransportConnection::*member)() = &SocketOf::getSocket;
        return (connection.*member)();
    }
};

/// One object to send, parsed.
struct Parsed {
    std::unique_ptr<DcmFileFormat> file;
    std::string sopClass;
    std::string sopInstance;
    E_TransferSyntax transferSyntax = EXS_Unknown;
    /// Index of its proposal.
    size_t proposal = 0;
};

/// One presentation context proposed: a SOP class with the transfer syntaxes it may go in.
struct Proposal {
    std::string sopClass;
    /// "" for the native (not encapsulated) group, else the encapsulated transfer syntax's UID.
    std::string encapsulated;
    std::vector<std::string> syntaxes;
    T_ASC_PresentationContextID id = 0;
};

/// Parses a whole PS3.10 file in memory into `parsed`; "" when it worked, else why not (no patient data:
/// DCMTK's condition texts name no value).
std::string parse(const dicom_scu_object &object, Parsed &parsed) {
    if (!object.data || object.size < 132 || std::memcmp(object.data + 128, "DICM", 4) != 0) {
        return "is not a DICOM file (no 128-byte preamble followed by \"DICM\")";
    }
    DcmInputBufferStream stream;
    stream.setBuffer(object.data, offile_off_t(object.size));
    stream.setEos();
    parsed.file.reset(new DcmFileFormat());
    parsed.file->transferInit();
    OFCondition read = parsed.file->read(stream, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    parsed.file->transferEnd();
    if (read.bad()) return std::string("cannot be parsed: ") + read.text();
    if (!stream.eos()) return "cannot be parsed: bytes remain after the data set";
    OFString syntax;
    if (parsed.file->getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, syntax).bad() || syntax.empty()) {
        return "has no Transfer Syntax UID in its File Meta Information";
    }
    DcmXfer xfer(syntax.c_str());
    if (xfer.getXfer() == EXS_Unknown) return "has a transfer syntax DCMTK does not know (" + std::string(syntax.c_str()) + ")";
    DcmDataset *dataset = parsed.file->getDataset();
    if (dataset->getOriginalXfer() != xfer.getXfer()) {
        return "has a data set not encoded in the transfer syntax its meta information names";
    }
    OFString sopClass, sopInstance;
    if (dataset->findAndGetOFString(DCM_SOPClassUID, sopClass).bad() || sopClass.empty()
        || dataset->findAndGetOFString(DCM_SOPInstanceUID, sopInstance).bad() || sopInstance.empty()) {
        return "has no SOP Class UID or SOP Instance UID";
    }
    if (sopClass.length() > 64 || sopInstance.length() > 64) return "has a SOP Class or SOP Instance UID longer than 64 characters";
    parsed.sopClass = sopClass.c_str();
    parsed.sopInstance = sopInstance.c_str();
    parsed.transferSyntax = xfer.getXfer();
    return "";
}

/// The network, the association's parameters and the association, freed in the right order whatever happens.
class Connection {
public:
    ~Connection() {
        if (assoc_) {
            ASC_destroyAssociation(&assoc_);  // frees params_ too
        } else if (params_) {
            ASC_destroyAssociationParameters(&params_);
        }
        if (net_) ASC_dropNetwork(&net_);
    }

    /// Sets up the network and the parameters (AE titles, address, PDU size); "" when it worked.
    std::string prepare(const dicom_scu_config &config) {
        // Process-wide in DCMTK 3.6.7 (there is no per-association connect timeout).
        dcmConnectionTimeout.set(Sint32(config.connect_timeout));
        OFCondition cond = ASC_initializeNetwork(NET_REQUESTOR, 0, int(config.acse_timeout), &net_);
        if (cond.good()) cond = ASC_createAssociationParameters(&params_, long(config.max_pdu));
        if (cond.good()) cond = ASC_setAPTitles(params_, config.calling_ae, config.called_ae, nullptr);
        const std::string address = std::string(config.host) + ":" + std::to_string(config.port);
        if (cond.good()) cond = ASC_setPresentationAddresses(params_, "localhost", address.c_str());
        return cond.good() ? "" : std::string("cannot set up the association: ") + cond.text();
    }

    T_ASC_Parameters *params() { return params_; }
    T_ASC_Association *assoc() { return assoc_; }

    /// Requests the association; returns a DICOM_SCU_* code, with the message in `why` when not OK.
    int request(const dicom_scu_config &config, std::string &why) {
        OFCondition cond = ASC_requestAssociation(net_, params_, &assoc_);
        if (cond.good()) {
            // A peer that stops reading must not hold a send for ever: each write waits at most the DIMSE
            // timeout (DCMTK's own default, dcmSocketSendTimeout, is a process-wide 60 s).
            struct timeval timeout = {time_t(config.dimse_timeout), 0};
            if (DcmTransportConnection *connection = DUL_getTransportConnection(assoc_->DULassociation)) {
                setsockopt(SocketOf::get(*connection), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
            }
            return DICOM_SCU_OK;
        }
        const std::string where = std::string(config.host) + ":" + std::to_string(config.port);
        if (cond == DUL_ASSOCIATIONREJECTED) {
            T_ASC_RejectParameters rejection;
            ASC_getRejectParameters(params_, &rejection);
            why = describeRejection(rejection) + " (" + where + ", called AE title " + config.called_ae + ")";
            return rejection.result == ASC_RESULT_REJECTEDTRANSIENT ? DICOM_SCU_REJECTED_TRANSIENT : DICOM_SCU_REJECTED_PERMANENT;
        }
        if (cond.module() == OFM_dcmnet && (cond.code() == DULC_TCPINITERROR || cond.code() == DULC_UNKNOWNHOST)) {
            why = "cannot connect to " + where + ": " + cond.text();
            return DICOM_SCU_UNREACHABLE;
        }
        if (cond == DUL_READTIMEOUT) {
            why = where + " took the connection but sent no association response within "
                + std::to_string(config.acse_timeout) + " s";
        } else if (cond == DUL_NETWORKCLOSED || cond == DUL_PEERABORTEDASSOCIATION) {
            // DCMTK reports a closed connection as an abort (A-P-ABORT) here: the two are not told apart.
            why = where + " closed the connection (or sent A-ABORT) instead of answering the association request";
        } else if (cond.module() == OFM_dcmnet && cond.code() == DULC_UNRECOGNIZEDPDUTYPE) {
            why = where + " did not answer with a DICOM PDU (is it a DICOM port?): " + cond.text();
        } else {
            why = "the association request to " + where + " failed: " + cond.text();
        }
        return DICOM_SCU_FAILED;
    }

    /// Releases the association (A-RELEASE); aborts it when the release is not confirmed. Returns whether released.
    bool release() {
        if (!assoc_) return true;
        if (ASC_releaseAssociation(assoc_).good()) return true;
        abort();
        return false;
    }

    /// Aborts the association (A-ABORT to the peer).
    void abort() {
        if (assoc_) ASC_abortAssociation(assoc_);
    }

private:
    T_ASC_Network *net_ = nullptr;
    T_ASC_Parameters *params_ = nullptr;
    T_ASC_Association *assoc_ = nullptr;
};

/// A DIMSE failure in words.
std::string describeDIMSEFailure(const OFCondition &cond, unsigned timeout) {
    if (cond == DIMSE_NODATAAVAILABLE) return "no C-STORE response within " + std::to_string(timeout) + " s";
    // A sub-condition: DCMTK's text has the network layer's cause on a second line.
    if (cond == DIMSE_SENDFAILED) {
        std::string text = cond.text();
        const size_t newline = text.find('\n');
        std::string cause = newline == std::string::npos ? "" : text.substr(newline + 1);
        if (cause.size() > 10 && cause[4] == ':' && cause[9] == ' ') cause = cause.substr(10);  // "0006:031d "
        return "sending it failed: the peer took no data for " + std::to_string(timeout) + " s or closed the connection"
             + (cause.empty() ? std::string() : " (" + cause + ")");
    }
    if (cond == DUL_PEERABORTEDASSOCIATION) return "the peer aborted the association";
    if (cond == DUL_NETWORKCLOSED) return "the peer closed the connection";
    if (cond == DUL_PEERREQUESTEDRELEASE) return "the peer asked to release the association";
    return cond.text();
}

int store(const dicom_scu_config &config, const dicom_scu_object *objects, size_t count, dicom_scu_result *results,
          char *error, size_t error_size) {
    for (size_t i = 0; i < count; ++i) results[i] = dicom_scu_result{DICOM_SCU_NOT_REACHED, DICOM_SCU_NO_STATUS};
    if (count == 0) {
        setError(error, error_size, "");
        return DICOM_SCU_OK;
    }

    // Every object is parsed before anything is sent: one that cannot be read sends none.
    std::vector<Parsed> parsed(count);
    std::vector<Proposal> proposals;
    for (size_t i = 0; i < count; ++i) {
        const std::string why = parse(objects[i], parsed[i]);
        if (!why.empty()) {
            setError(error, error_size,
                     "object " + std::to_string(i + 1) + " of " + std::to_string(count) + " " + why + "; nothing was sent");
            return DICOM_SCU_BAD_INPUT;
        }
        // One presentation context per SOP class for the native transfer syntaxes (DCMTK converts
        // between them losslessly), offering the objects' own first and then Explicit and Implicit VR
        // Little Endian; one per SOP class and encapsulated syntax, offering only that (this shim
        // registers no codec, so compressed pixel data goes as it is or not at all).
        const DcmXfer xfer(parsed[i].transferSyntax);
        const std::string key = xfer.isEncapsulated() ? xfer.getXferID() : "";
        size_t at = 0;
        while (at < proposals.size() && !(proposals[at].sopClass == parsed[i].sopClass && proposals[at].encapsulated == key)) ++at;
        if (at == proposals.size()) {
            if (proposals.size() == 128) {
                setError(error, error_size, "the objects need more than 128 presentation contexts (SOP class and transfer "
                                            "syntax pairs); send them in smaller groups. Nothing was sent");
                return DICOM_SCU_BAD_INPUT;
            }
            Proposal proposal;
            proposal.sopClass = parsed[i].sopClass;
            proposal.encapsulated = key;
            proposal.id = T_ASC_PresentationContextID(2 * proposals.size() + 1);
            proposals.push_back(proposal);
        }
        std::vector<std::string> &syntaxes = proposals[at].syntaxes;
        auto offer = [&syntaxes](const std::string &uid) {
            for (const std::string &s : syntaxes) if (s == uid) return;
            syntaxes.push_back(uid);
        };
        offer(xfer.getXferID());
        parsed[i].proposal = at;
    }
    for (Proposal &proposal : proposals) {
        if (!proposal.encapsulated.empty()) continue;
        for (const char *uid : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}) {
            bool present = false;
            for (const std::string &s : proposal.syntaxes) present = present || s == uid;
            if (!present) proposal.syntaxes.push_back(uid);
        }
    }

    Connection connection;
    std::string why = connection.prepare(config);
    if (!why.empty()) {
        setError(error, error_size, why);
        return DICOM_SCU_FAILED;
    }
    for (const Proposal &proposal : proposals) {
        std::vector<const char *> syntaxes;
        for (const std::string &s : proposal.syntaxes) syntaxes.push_back(s.c_str());
        OFCondition added = ASC_addPresentationContext(connection.params(), proposal.id, proposal.sopClass.c_str(),
                                                       syntaxes.data(), int(syntaxes.size()));
        if (added.bad()) {
            setError(error, error_size, std::string("cannot propose a presentation context: ") + added.text());
            return DICOM_SCU_FAILED;
        }
    }
    const int requested = connection.request(config, why);
    if (requested != DICOM_SCU_OK) {
        setError(error, error_size, why);
        return requested;
    }

    // What the peer made of each proposal: the accepted transfer syntax, or the reason for refusing it.
    std::vector<std::string> accepted(proposals.size());
    std::vector<int> refusal(proposals.size(), ASC_P_NOREASON);
    for (int k = 0; k < ASC_countPresentationContexts(connection.params()); ++k) {
        T_ASC_PresentationContext context;
        if (ASC_getPresentationContext(connection.params(), k, &context).bad()) continue;
        for (size_t p = 0; p < proposals.size(); ++p) {
            if (proposals[p].id != context.presentationContextID) continue;
            if (context.resultReason == ASC_P_ACCEPTANCE) accepted[p] = context.acceptedTransferSyntax;
            else refusal[p] = context.resultReason;
        }
    }

    std::string note;
    bool broken = false;
    for (size_t i = 0; i < count && !broken; ++i) {
        const Proposal &proposal = proposals[parsed[i].proposal];
        const std::string &syntax = accepted[parsed[i].proposal];
        const std::string which = "object " + std::to_string(i + 1) + " of " + std::to_string(count) + " ("
                                + sopClassName(parsed[i].sopClass) + ")";
        if (syntax.empty()) {
            bool classAccepted = false;
            for (size_t p = 0; p < proposals.size(); ++p) {
                classAccepted = classAccepted || (proposals[p].sopClass == proposal.sopClass && !accepted[p].empty());
            }
            const bool syntaxRefused = classAccepted || refusal[parsed[i].proposal] == ASC_P_TRANSFERSYNTAXESNOTSUPPORTED;
            results[i].outcome = syntaxRefused ? DICOM_SCU_TRANSFER_SYNTAX_NOT_ACCEPTED : DICOM_SCU_SOP_CLASS_NOT_ACCEPTED;
            if (note.empty()) {
                note = which + " was not sent: the peer "
                     + (syntaxRefused ? "accepted none of its transfer syntaxes" : "does not accept its SOP class");
            }
            continue;
        }
        DcmDataset *dataset = parsed[i].file->getDataset();
        const E_TransferSyntax target = DcmXfer(syntax.c_str()).getXfer();
        if (target == EXS_Unknown || !dataset->canWriteXfer(target, parsed[i].transferSyntax)) {
            results[i].outcome = DICOM_SCU_TRANSFER_SYNTAX_NOT_ACCEPTED;
            if (note.empty()) note = which + " was not sent: it cannot be converted losslessly to the transfer syntax the peer accepted";
            continue;
        }
        T_DIMSE_C_StoreRQ request;
        std::memset(&request, 0, sizeof request);
        request.MessageID = connection.assoc()->nextMsgID++;
        OFStandard::strlcpy(request.AffectedSOPClassUID, parsed[i].sopClass.c_str(), sizeof request.AffectedSOPClassUID);
        OFStandard::strlcpy(request.AffectedSOPInstanceUID, parsed[i].sopInstance.c_str(), sizeof request.AffectedSOPInstanceUID);
        request.DataSetType = DIMSE_DATASET_PRESENT;
        request.Priority = DIMSE_PRIORITY_MEDIUM;
        T_DIMSE_C_StoreRSP response;
        std::memset(&response, 0, sizeof response);
        DcmDataset *detail = nullptr;
        OFCondition sent = DIMSE_storeUser(connection.assoc(), proposal.id, &request, nullptr, dataset, nullptr, nullptr,
                                           DIMSE_NONBLOCKING, int(config.dimse_timeout), &response, &detail);
        delete detail;
        parsed[i].file.reset();  // sent: its memory goes now, not after the last object
        if (sent.good()) {
            results[i].outcome = DICOM_SCU_RESPONDED;
            results[i].status = response.DimseStatus;
            continue;
        }
        // The checks DCMTK makes before sending a byte were made above (transfer syntax, context), and its
        // conditions do not tell them from a failed write: any failure here has broken the message stream.
        results[i].outcome = DICOM_SCU_NO_RESPONSE;
        const bool peerEnded = sent == DUL_PEERABORTEDASSOCIATION || sent == DUL_NETWORKCLOSED;
        note = which + " got no response (" + describeDIMSEFailure(sent, config.dimse_timeout) + "); "
             + (peerEnded ? "the association ended" : "the association was aborted")
             + (i + 1 < count ? " and the objects after it were not sent" : "");
        broken = true;
        if (!peerEnded) connection.abort();
    }
    if (!broken && !connection.release() && note.empty()) note = "the peer did not confirm the association's release (it was aborted)";
    setError(error, error_size, note);
    return DICOM_SCU_OK;
}

int echo(const dicom_scu_config &config, char *error, size_t error_size) {
    Connection connection;
    std::string why = connection.prepare(config);
    if (why.empty()) {
        const char *syntaxes[] = {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax};
        OFCondition added = ASC_addPresentationContext(connection.params(), 1, UID_VerificationSOPClass, syntaxes, 2);
        if (added.bad()) why = std::string("cannot propose Verification: ") + added.text();
    }
    if (!why.empty()) {
        setError(error, error_size, why);
        return DICOM_SCU_FAILED;
    }
    const int requested = connection.request(config, why);
    if (requested != DICOM_SCU_OK) {
        setError(error, error_size, why);
        return requested;
    }
    if (ASC_countAcceptedPresentationContexts(connection.params()) == 0) {
        connection.release();
        setError(error, error_size, "the peer does not accept the Verification SOP class (C-ECHO)");
        return DICOM_SCU_FAILED;
    }
    DIC_US status = 0;
    DcmDataset *detail = nullptr;
    OFCondition answered = DIMSE_echoUser(connection.assoc(), connection.assoc()->nextMsgID++, DIMSE_NONBLOCKING,
                                          int(config.dimse_timeout), &status, &detail);
    delete detail;
    if (answered.bad()) {
        if (!(answered == DUL_PEERABORTEDASSOCIATION || answered == DUL_NETWORKCLOSED)) connection.abort();
        std::string text = answered == DIMSE_NODATAAVAILABLE ? "no C-ECHO response within " + std::to_string(config.dimse_timeout) + " s"
                                                             : describeDIMSEFailure(answered, config.dimse_timeout);
        setError(error, error_size, "C-ECHO failed: " + text);
        return DICOM_SCU_FAILED;
    }
    connection.release();
    if (status != STATUS_Success) {
        char code[8];
        std::snprintf(code, sizeof code, "0x%04x", unsigned(status));
        setError(error, error_size, std::string("C-ECHO answered with status ") + code);
        return DICOM_SCU_FAILED;
    }
    setError(error, error_size, "");
    return DICOM_SCU_OK;
}

}  // namespace

extern "C" int dicom_scu_store(const dicom_scu_config *config, const dicom_scu_object *objects, size_t count,
                               dicom_scu_result *results, char *error, size_t error_size) {
    if ((count > 0 && (!objects || !results))) {
        setError(error, error_size, "the objects or their results are missing");
        return DICOM_SCU_FAILED;
    }
    for (size_t i = 0; i < count; ++i) results[i] = dicom_scu_result{DICOM_SCU_NOT_REACHED, DICOM_SCU_NO_STATUS};
    const std::string invalid = checkConfig(config);
    if (!invalid.empty()) {
        setError(error, error_size, invalid);
        return DICOM_SCU_FAILED;
    }
    try {
        silenceDCMTK();
        return store(*config, objects, count, results, error, error_size);
    } catch (const std::exception &e) {
        setError(error, error_size, std::string("sending failed: ") + e.what());
    } catch (...) {
        setError(error, error_size, "sending failed");
    }
    return DICOM_SCU_FAILED;
}

extern "C" int dicom_scu_echo(const dicom_scu_config *config, char *error, size_t error_size) {
    const std::string invalid = checkConfig(config);
    if (!invalid.empty()) {
        setError(error, error_size, invalid);
        return DICOM_SCU_FAILED;
    }
    try {
        silenceDCMTK();
        return echo(*config, error, error_size);
    } catch (const std::exception &e) {
        setError(error, error_size, std::string("C-ECHO failed: ") + e.what());
    } catch (...) {
        setError(error, error_size, "C-ECHO failed");
    }
    return DICOM_SCU_FAILED;
}
