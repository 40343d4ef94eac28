plugins {
    alias(libs.plugins.android.application)
}

android {
    namespace = "org.mfdeploy.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "org.mfdeploy.demo"
        minSdk = 24
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // The .tflite is read into a direct buffer and the .pte copied to a file for
    // Module.load; kept uncompressed, both are read without inflating (and could be mmapped).
    androidResources {
        noCompress += "tflite"
        noCompress += "pte"
    }
}

dependencies {
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.litert.gpu.api)
    implementation(libs.executorch.android)
    implementation(libs.androidx.activity)

    testImplementation(libs.junit)

    androidTestImplementation(libs.androidx.test.junit)
    androidTestImplementation(libs.androidx.test.runner)
}
