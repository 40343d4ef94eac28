package org.mfdeploy.demo.core

/** One class of a result: index into labels.txt and its softmax score. */
data class Prediction(val index: Int, val score: Float, val label: String = index.toString())

/** Softmax and top-k as mfdeploy.metrics.top_k (ties: the lower index first). */
object TopK {
    fun softmax(logits: FloatArray): FloatArray {
        var max = Float.NEGATIVE_INFINITY
        for (v in logits) if (v > max) max = v
        val exps = FloatArray(logits.size) { Math.exp((logits[it] - max).toDouble()).toFloat() }
        var sum = 0.0
        for (v in exps) sum += v
        return FloatArray(exps.size) { (exps[it] / sum).toFloat() }
    }

    fun topK(logits: FloatArray, k: Int, labels: List<String> = emptyList()): List<Prediction> {
        val probs = softmax(logits)
        val order = probs.indices.sortedWith(compareBy<Int>({ -probs[it] }, { it }))
        return order.take(k).map { Prediction(it, probs[it], labels.getOrElse(it) { i -> i.toString() }) }
    }

    /** Median of measured times (the mean of the two middle ones for an even count). */
    fun median(values: List<Double>): Double {
        require(values.isNotEmpty()) { "no values" }
        val sorted = values.sorted()
        val mid = sorted.size / 2
        return if (sorted.size % 2 == 1) sorted[mid] else (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}
