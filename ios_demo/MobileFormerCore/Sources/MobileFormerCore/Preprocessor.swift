/// The arithmetic of mfdeploy/preprocessing.py, step for step, without UIKit / Core ML.
///
/// 1. resize the short side to `resize` (`resizedSize`, Python's rounding), 2. centre-crop
/// `resolution` (`cropOrigin`, offsets rounded down), 3. x = (pixel * pixelScale - mean) / std
/// in Float (float32) (`normalize`), laid out as the model's input (NCHW or NHWC).
///
/// Step 1's resampling is done by Core Graphics in the app (not PIL's antialiased bilinear)
/// and is skipped when the image already has the resized size, as the bundled sample does,
/// so the sample's tensor is bit-exact. Steps 2 and 3 are exact for every image.
public enum Preprocessor {
    /// (width, height) after resizing the short side to `resize`, as PIL's path computes it.
    public static func resizedSize(width: Int, height: Int, resize: Int) -> (width: Int, height: Int) {
        if width <= height {
            return (resize, max(resize, roundHalfEven(height * resize, width)))
        }
        return (max(resize, roundHalfEven(width * resize, height)), resize)
    }

    /// Python's int(round(a / b)): round half to even.
    static func roundHalfEven(_ a: Int, _ b: Int) -> Int {
        Int((Double(a) / Double(b)).rounded(.toNearestOrEven))
    }

    /// Left / top of the centred crop: (size - resolution) // 2.
    public static func cropOrigin(width: Int, height: Int, resolution: Int) -> (x: Int, y: Int) {
        precondition(width >= resolution && height >= resolution, "image smaller than the crop")
        return ((width - resolution) / 2, (height - resolution) / 2)
    }

    /// RGBA8 pixels of the resized image (row major, 4 bytes per pixel, alpha ignored) ->
    /// centre crop -> normalised Float tensor in `layout` ("NCHW" or "NHWC").
    public static func normalize(rgba: [UInt8], width: Int, height: Int,
                                 spec: PreprocessingSpec, layout: String) -> [Float] {
        precondition(rgba.count == width * height * 4, "expected \(width * height) RGBA pixels")
        let res = spec.resolution
        let (left, top) = cropOrigin(width: width, height: height, resolution: res)
        // Doubles from JSON rounded once to float32, as numpy's np.asarray(..., float32).
        let scale = Float(spec.pixelScale)
        let mean = spec.mean.map { Float($0) }
        let std = spec.std.map { Float($0) }
        let plane = res * res
        var out = [Float](repeating: 0, count: 3 * plane)
        for y in 0..<res {
            for x in 0..<res {
                let p = ((top + y) * width + left + x) * 4
                for c in 0..<3 {
                    // Same float32 operations, in the same order, as numpy: (p * s - m) / d.
                    let scaled: Float = Float(rgba[p + c]) * scale
                    let centred: Float = scaled - mean[c]
                    let v: Float = centred / std[c]
                    if layout == "NHWC" {
                        out[(y * res + x) * 3 + c] = v
                    } else {
                        out[c * plane + y * res + x] = v
                    }
                }
            }
        }
        return out
    }

    /// float -> int8 / uint8 as mfdeploy.runtimes.base.quantize: round half to even, clip.
    public static func quantize(_ x: [Float], scale: Double, zeroPoint: Int, min: Int, max: Int) -> [Int] {
        let s = Float(scale)
        return x.map { v in
            let q = Int((v / s).rounded(.toNearestOrEven)) + zeroPoint
            return Swift.min(Swift.max(q, min), max)
        }
    }

    public static func dequantize(_ q: [Int], scale: Double, zeroPoint: Int) -> [Float] {
        let s = Float(scale)
        return q.map { Float($0 - zeroPoint) * s }
    }
}
