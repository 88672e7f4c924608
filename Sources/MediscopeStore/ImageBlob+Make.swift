import MediscopeEncoding

package extension ImageBlob {
    /// An image blob whose key is the SHA-256 of `bytes` (lowercase hex).
    static func make(bytes: [UInt8], contentType: String, width: Int, height: Int) -> ImageBlob {
        var blob = ImageBlob(ref: ImageRef(key: SHA256Hex.digest(bytes), contentType: contentType, width: width,
                                           height: height, byteCount: bytes.count),
                             bytes: bytes)
        blob.keyIsDigest = true
        return blob
    }
}
