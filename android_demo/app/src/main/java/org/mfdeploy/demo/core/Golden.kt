package org.mfdeploy.demo.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.security.MessageDigest

/** golden.json written by `mfdeploy bundle` (format: mfdeploy/golden.py). */
class Golden(
    val sampleImage: String,
    val sampleSize: List<Int>,
    val inputShape: List<Int>,
    val inputLayout: String,
    val inputSha256: String,
    val inputSum: Double,
    val inputTolerance: Double,
    val samples: List<Sample>,
    val topK: List<Entry>,
    val logitTolerance: Double
) {
    class Sample(val position: List<Int>, val index: Int, val value: Double)

    /** A golden class: its logit is what is compared; the score is for display. */
    class Entry(val index: Int, val label: String, val logit: Double, val score: Double)

    companion object {
        @Suppress("UNCHECKED_CAST")
        fun parse(text: String): Golden {
            val map = Json.parse(text) as Map<String, Any?>
            val input = map.obj("input")
            return Golden(
                sampleImage = map.str("sample_image"),
                sampleSize = map.ints("sample_size"),
                inputShape = input.ints("shape"),
                inputLayout = input.str("layout"),
                inputSha256 = input.str("sha256"),
                inputSum = input.num("sum"),
                inputTolerance = input.num("tolerance"),
                samples = input.list("samples").map {
                    val s = it as Map<String, Any?>
                    Sample(s.ints("position"), s.num("index").toInt(), s.num("value"))
                },
                topK = map.list("top_k").map {
                    val t = it as Map<String, Any?>
                    Entry(t.num("index").toInt(), t.str("label"), t.num("logit"), t.num("score"))
                },
                logitTolerance = map.num("logit_tolerance")
            )
        }
    }
}

/** The checks of mfdeploy.golden.compare; each returns the differences (empty = pass). */
object GoldenCheck {
    /** sha256 of the tensor's float32 little-endian bytes (as numpy's '<f4' tobytes). */
    fun sha256(x: FloatArray): String {
        val bytes = ByteBuffer.allocate(x.size * 4).order(ByteOrder.LITTLE_ENDIAN)
        for (v in x) bytes.putFloat(v)
        val digest = MessageDigest.getInstance("SHA-256").digest(bytes.array())
        return digest.joinToString("") { String.format("%02x", it.toInt() and 0xFF) }
    }

    fun compareInput(golden: Golden, x: FloatArray): List<String> {
        val failures = ArrayList<String>()
        val expected = golden.inputShape.fold(1) { a, b -> a * b }
        if (x.size != expected) return listOf("input has ${x.size} values, golden ${golden.inputShape}")
        if (sha256(x) != golden.inputSha256) failures.add("input checksum differs from the golden")
        for (s in golden.samples) {
            if (Math.abs(x[s.index] - s.value) > golden.inputTolerance) {
                failures.add("input${s.position} = ${x[s.index]}, golden ${s.value}")
            }
        }
        var sum = 0.0
        for (v in x) sum += v
        if (Math.abs(sum - golden.inputSum) > golden.inputTolerance * x.size) {
            failures.add("input sum $sum, golden ${golden.inputSum}")
        }
        return failures
    }

    fun compareTopK(golden: Golden, logits: FloatArray): List<String> {
        val failures = ArrayList<String>()
        val tol = golden.logitTolerance
        for (g in golden.topK) {
            if (Math.abs(logits[g.index] - g.logit) > tol) {
                failures.add("class ${g.index}: logit ${logits[g.index]}, golden ${g.logit}")
            }
        }
        val goldenIndices = golden.topK.map { it.index }.toSet()
        val floor = golden.topK.fold(Double.POSITIVE_INFINITY) { a, e -> minOf(a, e.logit) } + tol
        for (p in TopK.topK(logits, golden.topK.size)) {
            if (p.index !in goldenIndices && logits[p.index] > floor) {
                failures.add("class ${p.index} (${logits[p.index]}) is in the top-${golden.topK.size}, not golden")
            }
        }
        return failures
    }

    fun compare(golden: Golden, x: FloatArray, logits: FloatArray): List<String> =
        compareInput(golden, x) + compareTopK(golden, logits)
}
