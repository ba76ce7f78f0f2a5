import Platform
import StorageEngine

/// Renders the Prometheus text exposition format (version 0.0.4).
struct PrometheusText {
    private(set) var text = ""

    mutating func help(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(PrometheusText.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + PrometheusText.format(value) + "\n"
    }

    mutating func gauge(_ name: String, _ help: String, _ value: Double) {
        self.help(name, "gauge", help)
        sample(name, [], value)
    }

    mutating func counter(_ name: String, _ help: String, _ value: Double) {
        self.help(name, "counter", help)
        sample(name, [], value)
    }

    mutating func histogram(_ name: String, _ labels: [(String, String)], _ snapshot: HistogramSnapshot) {
        var cumulative = 0
        for (index, bound) in snapshot.bounds.enumerated() {
            cumulative += snapshot.counts[index]
            sample(name + "_bucket", labels + [("le", PrometheusText.format(bound))], Double(cumulative))
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], Double(snapshot.count))
        sample(name + "_sum", labels, snapshot.sum)
        sample(name + "_count", labels, Double(snapshot.count))
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
