package org.mfdeploy.demo.core

/** One tensor of the manifest (mfdeploy.artifact.TensorSpec). scale / zeroPoint: int8 only. */
data class TensorSpec(
    val name: String,
    val shape: List<Int>,
    val dtype: String,
    val layout: String?,
    val scale: Double?,
    val zeroPoint: Int?
) {
    val quantized: Boolean get() = scale != null && dtype != "float32"

    companion object {
        fun from(map: Map<String, Any?>) = TensorSpec(
            name = map.str("name"),
            shape = map.ints("shape"),
            dtype = map.str("dtype"),
            layout = map.strOrNull("layout"),
            scale = map.numOrNull("scale"),
            zeroPoint = map.numOrNull("zero_point")?.toInt()
        )
    }
}

/** The manifest's `preprocessing` (mfdeploy.preprocessing.Preprocessing.to_dict). */
class PreprocessingSpec(
    val resolution: Int,
    val resize: Int,
    val mean: FloatArray,
    val std: FloatArray,
    val pixelScale: Float,
    val interpolation: String
) {
    companion object {
        fun from(map: Map<String, Any?>) = PreprocessingSpec(
            resolution = map.num("resolution").toInt(),
            resize = map.num("resize").toInt(),
            // Doubles from JSON rounded once to float32, as numpy's np.asarray(..., float32).
            mean = map.doubles("mean").map { it.toFloat() }.toFloatArray(),
            std = map.doubles("std").map { it.toFloat() }.toFloatArray(),
            pixelScale = map.num("pixel_scale").toFloat(),
            interpolation = map.str("interpolation")
        )
    }
}

/** manifest.json of a bundled artifact: everything the app needs to feed the model. */
class ModelManifest(
    val model: String,
    val variant: String?,
    val target: String,
    val precision: String,
    val modelFile: String,
    val labelsFile: String,
    val numClasses: Int,
    val input: TensorSpec,
    val output: TensorSpec,
    val preprocessing: PreprocessingSpec,
    val syntheticWeights: Boolean
) {
    /** NCHW or NHWC: the layout the model's input tensor takes. */
    val layout: String get() = input.layout ?: "NCHW"

    companion object {
        const val SCHEMA_VERSION = 2

        fun parse(text: String): ModelManifest {
            @Suppress("UNCHECKED_CAST")
            val map = Json.parse(text) as? Map<String, Any?>
                ?: throw IllegalArgumentException("manifest.json is not a JSON object")
            val version = map.numOrNull("schema_version")?.toInt()
            require(version == SCHEMA_VERSION) {
                "manifest schema version $version is not supported (expected $SCHEMA_VERSION)"
            }
            val manifest = ModelManifest(
                model = map.str("model"),
                variant = map.strOrNull("variant"),
                target = map.str("target"),
                precision = map.str("precision"),
                modelFile = map.str("model_file"),
                labelsFile = map.str("labels_file"),
                numClasses = map.num("num_classes").toInt(),
                input = TensorSpec.from(map.obj("input")),
                output = TensorSpec.from(map.obj("output")),
                preprocessing = PreprocessingSpec.from(map.obj("preprocessing")),
                syntheticWeights = map["synthetic_weights"] == true
            )
            require(manifest.input.shape.size == 4 && manifest.input.shape[0] == 1) {
                "the app feeds one image; input shape is ${manifest.input.shape}"
            }
            require(manifest.layout == "NCHW" || manifest.layout == "NHWC") {
                "unknown input layout ${manifest.layout}"
            }
            return manifest
        }
    }
}

/** labels.txt: one class name per line, in index order. */
fun parseLabels(text: String): List<String> = text.lines().map { it.trim() }.filter { it.isNotEmpty() }
