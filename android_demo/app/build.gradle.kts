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

    // The model is read into a direct buffer; keeping it uncompressed also allows mmap.
    androidResources {
        noCompress += "tflite"
    }
}

dependencies {
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.litert.gpu.api)
    implementation(libs.androidx.activity)

    testImplementation(libs.junit)

    androidTestImplementation(libs.androidx.test.junit)
    androidTestImplementation(libs.androidx.test.runner)
}
