import MobileFormerCore
import PhotosUI
import SwiftUI

/// One screen: the photo, compute units, top-5 with scores and the median inference time.
struct ContentView: View {
    @State private var units: ComputeChoice = .cpuOnly
    @State private var image: UIImage?
    @State private var result: Classification?
    @State private var info = ""
    @State private var error: String?
    @State private var busy = false
    @State private var picked: PhotosPickerItem?
    @State private var showCamera = false
    @State private var classifier: Classifier?

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    if let image {
                        Image(uiImage: image).resizable().scaledToFit().frame(maxHeight: 240)
                    }
                    Picker("Compute units", selection: $units) {
                        ForEach(ComputeChoice.allCases) { Text($0.rawValue).tag($0) }
                    }
                    HStack {
                        Button("Sample") { loadSample() }
                        Spacer()
                        PhotosPicker("Pick photo", selection: $picked, matching: .images)
                        Spacer()
                        Button("Take photo") { showCamera = true }
                            .disabled(!UIImagePickerController.isSourceTypeAvailable(.camera))
                    }
                    .buttonStyle(.borderless)
                }
                Section(info) {
                    if busy { ProgressView() }
                    if let error { Text(error).foregroundStyle(.red) }
                    if let result {
                        ForEach(result.top, id: \.index) { p in
                            HStack {
                                Text(String(format: "%.3f", p.score)).monospacedDigit()
                                Text("\(p.index)").monospacedDigit().foregroundStyle(.secondary)
                                Text(p.label)
                            }
                        }
                        Text(String(format: "median %.2f ms over %d runs (%@)",
                                    result.medianMs, result.runs, units.rawValue))
                            .font(.footnote)
                    }
                }
            }
            .navigationTitle("Mobile-Former")
        }
        .onAppear(perform: loadSample)
        .onChange(of: units) { _ in
            classifier = nil
            if let image { classify(image) }
        }
        .onChange(of: picked) { item in
            Task {
                if let data = try? await item?.loadTransferable(type: Data.self), let photo = UIImage(data: data) {
                    classify(photo)
                }
            }
        }
        .sheet(isPresented: $showCamera) {
            CameraPicker { photo in classify(photo) }
        }
    }

    private func loadSample() {
        do { classify(try Classifier.loadSample()) } catch { self.error = "\(error)" }
    }

    private func classify(_ photo: UIImage) {
        image = photo
        busy = true
        error = nil
        let units = self.units
        let existing = classifier
        Task.detached(priority: .userInitiated) {
            do {
                let c = try existing ?? Classifier(computeUnits: units)
                let r = try c.classify(photo)
                let m = c.manifest
                await MainActor.run {
                    classifier = c
                    result = r
                    info = "\(m.model) \(m.target) \(m.precision) (\(m.layout) \(m.input.dtype))"
                        + (m.syntheticWeights ? " - synthetic weights: classes are meaningless" : "")
                    busy = false
                }
            } catch {
                await MainActor.run {
                    self.error = "\(error)"
                    busy = false
                }
            }
        }
    }
}

/// The camera as a SwiftUI sheet (UIImagePickerController).
struct CameraPicker: UIViewControllerRepresentable {
    let onPhoto: (UIImage) -> Void
    @Environment(\.dismiss) private var dismiss

    func makeUIViewController(context: Context) -> UIImagePickerController {
        let picker = UIImagePickerController()
        picker.sourceType = .camera
        picker.delegate = context.coordinator
        return picker
    }

    func updateUIViewController(_ controller: UIImagePickerController, context: Context) {}

    func makeCoordinator() -> Coordinator { Coordinator(self) }

    final class Coordinator: NSObject, UIImagePickerControllerDelegate, UINavigationControllerDelegate {
        let parent: CameraPicker
        init(_ parent: CameraPicker) { self.parent = parent }

        func imagePickerController(_ picker: UIImagePickerController,
                                   didFinishPickingMediaWithInfo info: [UIImagePickerController.InfoKey: Any]) {
            if let photo = info[.originalImage] as? UIImage { parent.onPhoto(photo) }
            parent.dismiss()
        }

        func imagePickerControllerDidCancel(_ picker: UIImagePickerController) { parent.dismiss() }
    }
}
