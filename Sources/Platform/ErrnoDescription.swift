#if canImport(Glibc)
import Glibc
#endif

/// The C library's text for an error number ("Connection refused"): the one strerror wrapper
/// every layer's error descriptions use. (strerror's buffer is thread-local in glibc, and the
/// text is copied out at once.)
public func errnoDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text)
}
