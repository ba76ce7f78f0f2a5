import Foundation
import Testing
@testable import StorageEngine

@Test func smoke() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("smoke-\(UUID())").path
    let db = try Database.open(directory: dir, create: true)
    try await db.put("hello", Array("world".utf8))
    #expect(try db.get("hello") == Array("world".utf8))
    await withTaskGroup(of: Void.self) { group in
        for i in 0..<100 { group.addTask { try! await db.put(Key("k\(i)"), Array(repeating: 1, count: i)) } }
    }
    let cp = try await db.checkpoint()
    try await db.delete("k5")
    print(db.stats, cp)
    db.close()
    let db2 = try Database.open(directory: dir)
    print(db2.recovery.summary)
    #expect(try db2.get("k5") == nil)
    #expect(try db2.get("k7") == Array(repeating: 1, count: 7))
    #expect(db2.stats.keys == 100)
    db2.close()
    let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    print(files)
}
