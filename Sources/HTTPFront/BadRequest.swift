/// A request the new routes refuse before touching the engine (a listing's query, a conditional
/// field): the message of its 400, written as `{"error":"<message>"}`.
struct BadRequest: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
