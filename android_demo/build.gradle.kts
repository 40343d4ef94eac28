// Versions are pinned in gradle/libs.versions.toml.
plugins {
    alias(libs.plugins.android.application) apply false
    // AGP 9 compiles Kotlin itself (built-in Kotlin); declaring KGP here pins its version.
    alias(libs.plugins.kotlin.android) apply false
}
