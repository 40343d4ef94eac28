import Foundation

/// golden.json written by `mfdeploy bundle` (format: mfdeploy/golden.py).
public struct Golden: Decodable {
    public struct Sample: Decodable {
        public let position: [Int]
        public let index: Int
        public let value: Double
    }

    public struct Input: Decodable {
        public let name: String
        public let layout: String
        public let shape: [Int]
        public let sha256: String
        public let sum: Double
        public let tolerance: Double
        public let samples: [Sample]
    }

    /// A golden class: its logit is what is compared; the score is for display.
    public struct Entry: Decodable {
        public let index: Int
        public let label: String
        public let logit: Double
        public let score: Double
    }

    public let sampleImage: String
    public let sampleSize: [Int]
    public let input: Input
    public let topK: [Entry]
    public let logitTolerance: Double

    enum CodingKeys: String, CodingKey {
        case input
        case sampleImage = "sample_image"
        case sampleSize = "sample_size"
        case topK = "top_k"
        case logitTolerance = "logit_tolerance"
    }

    public static func parse(_ data: Data) throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: data)
    }
}

/// The checks of mfdeploy.golden.compare; each returns the differences (empty = pass).
public enum GoldenCheck {
    /// sha256 of the tensor's float32 little-endian bytes (as numpy's '<f4' tobytes).
    public static func sha256(_ x: [Float]) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(x.count * 4)
        for v in x {
            let bits = v.bitPattern.littleEndian
            bytes.append(UInt8(truncatingIfNeeded: bits))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 16))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 24))
        }
        return SHA256.hex(bytes)
    }

    public static func compareInput(_ golden: Golden, _ x: [Float]) -> [String] {
        let expected = golden.input.shape.reduce(1, *)
        guard x.count == expected else {
            return ["input has \(x.count) values, golden \(golden.input.shape)"]
        }
        var failures = [String]()
        if sha256(x) != golden.input.sha256 {
            failures.append("input checksum differs from the golden")
        }
        for s in golden.input.samples where abs(Double(x[s.index]) - s.value) > golden.input.tolerance {
            failures.append("input\(s.position) = \(x[s.index]), golden \(s.value)")
        }
        let sum = x.reduce(0.0) { $0 + Double($1) }
        if abs(sum - golden.input.sum) > golden.input.tolerance * Double(x.count) {
            failures.append("input sum \(sum), golden \(golden.input.sum)")
        }
        return failures
    }

    public static func compareTopK(_ golden: Golden, _ logits: [Float]) -> [String] {
        var failures = [String]()
        let tol = golden.logitTolerance
        for g in golden.topK where abs(Double(logits[g.index]) - g.logit) > tol {
            failures.append("class \(g.index): logit \(logits[g.index]), golden \(g.logit)")
        }
        let goldenIndices = Set(golden.topK.map(\.index))
        let floor = (golden.topK.map(\.logit).min() ?? 0) + tol
        for p in TopK.topK(logits, k: golden.topK.count)
        where !goldenIndices.contains(p.index) && Double(logits[p.index]) > floor {
            failures.append("class \(p.index) (\(logits[p.index])) is in the top-\(golden.topK.count), not golden")
        }
        return failures
    }

    public static func compare(_ golden: Golden, input: [Float], logits: [Float]) -> [String] {
        compareInput(golden, input) + compareTopK(golden, logits)
    }
}

/// FIPS 180-4 SHA-256 in plain Swift (CryptoKit is not available to `swift test` on Linux).
enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    static func hex(_ message: [UInt8]) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                           0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        let bitLength = UInt64(message.count) * 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) {
            data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let b = chunk + i * 4
                w[i] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d
            h[4] = h[4] &+ e; h[5] = h[5] &+ f; h[6] = h[6] &+ g; h[7] = h[7] &+ hh
        }
        return h.map { String(format: "%08x", $0) }.joined()
    }
}
