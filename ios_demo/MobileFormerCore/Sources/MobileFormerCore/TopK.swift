import Foundation

/// One class of a result: index into labels.txt and its softmax score.
public struct Prediction: Equatable {
    public let index: Int
    public let score: Float
    public let label: String

    public init(index: Int, score: Float, label: String) {
        self.index = index
        self.score = score
        self.label = label
    }
}

/// Softmax and top-k as mfdeploy.metrics.top_k (ties: the lower index first).
public enum TopK {
    public static func softmax(_ logits: [Float]) -> [Float] {
        let maxValue = logits.max() ?? 0
        let exps = logits.map { Float(exp(Double($0 - maxValue))) }
        let sum = exps.reduce(0.0) { $0 + Double($1) }
        return exps.map { Float(Double($0) / sum) }
    }

    public static func topK(_ logits: [Float], k: Int, labels: [String] = []) -> [Prediction] {
        let probs = softmax(logits)
        let order = probs.indices.sorted { a, b in
            probs[a] != probs[b] ? probs[a] > probs[b] : a < b
        }
        return order.prefix(k).map { i in
            Prediction(index: i, score: probs[i], label: i < labels.count ? labels[i] : String(i))
        }
    }

    /// Median of measured times (the mean of the two middle ones for an even count).
    public static func median(_ values: [Double]) -> Double {
        precondition(!values.isEmpty, "no values")
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }
}
