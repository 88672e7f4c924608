import MediscopeEncoding
import MediscopeImaging

package extension ImageBlob {
    /// An image blob whose key is the SHA-256 of `bytes` (lowercase hex).
    static func make(bytes: [UInt8], contentType: String, width: Int, height: Int) -> ImageBlob {
        var blob = ImageBlob(ref: ImageRef(key: SHA256Hex.digest(bytes), contentType: contentType, width: width,
                                           height: height, byteCount: bytes.count),
                             bytes: bytes)
        blob.keyIsDigest = true
        return blob
    }

    /// An image blob of an image this process encoded as `format`: the media type stays typed up to the record.
    static func make(bytes: [UInt8], format: ImageFormat, width: Int, height: Int) -> ImageBlob {
        make(bytes: bytes, contentType: format.contentType, width: width, height: height)
    }
}
