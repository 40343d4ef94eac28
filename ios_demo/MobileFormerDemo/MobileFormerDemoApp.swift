import SwiftUI

@main
struct MobileFormerDemoApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
