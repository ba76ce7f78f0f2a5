extension String {
    /// A peer's text made safe for one log line: control characters (newlines included) become
    /// "?", so a hostile peer cannot forge log lines.
    var sanitizedForLog: String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }
}
