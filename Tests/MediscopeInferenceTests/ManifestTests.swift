import Foundation
import Testing
import TestSupport
@testable import MediscopeInference

@Suite struct ManifestTests {
    @Test func defaultManifestDescribesTheVGG16Model() throws {
        let manifest = try ModelManifest.load(from: Repository.defaultManifest)
        let model = try #require(manifest.models.first)
        #expect(model.labels == ["glioma", "meningioma", "notumor", "pituitary"])
        #expect(model.input.shape == [1, 240, 240, 3])
        #expect(manifest.resultIDs == [model.id, "tumor-presence"])
        #expect(manifest.fileURL(of: model).path.hasSuffix("models/brain_tumor_vgg16.pt"))
    }

    func manifest(_ json: String) throws(ModelError) -> ModelManifest {
        let dir = TemporaryFolder()
        return try ModelManifest.load(from: dir.file("manifest.json", json))
    }

    static let valid = """
    {"version": 1, "models": [{"id": "m", "file": "m.pt", "task": "multiclass", "labels": ["a", "b", "c"],
     "input": {"width": 8, "height": 8, "layout": "NCHW", "color": "L", "resize": "bicubic",
               "scale": 0.5, "mean": [0], "std": [1]},
     "derived": [{"id": "d", "task": "binary", "labels": ["no", "yes"], "negative": ["b"]}]}]}
    """

    @Test func validManifestParses() throws {
        let m = try manifest(Self.valid)
        #expect(m.models[0].input.shape == [1, 1, 8, 8])
        #expect(m.resultIDs == ["m", "d"])
    }

    @Test(arguments: [
        ("{", "not valid"),
        (valid.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 7"), "version 7"),
        (valid.replacingOccurrences(of: "\"labels\": [\"a\", \"b\", \"c\"],", with: ""), "missing key models[0].labels"),
        (valid.replacingOccurrences(of: "\"negative\": [\"b\"]", with: "\"negative\": [\"zzz\"]"), "derived result d"),
        (valid.replacingOccurrences(of: "\"id\": \"d\"", with: "\"id\": \"m\""), "appears twice"),
        (valid.replacingOccurrences(of: "\"mean\": [0]", with: "\"mean\": [0, 0, 0]"), "mean and std"),
        (valid.replacingOccurrences(of: "\"std\": [1]", with: "\"std\": [0]"), "non-zero"),
        (valid.replacingOccurrences(of: "\"bicubic\"", with: "\"lanczos\""), "not supported"),
        (valid.replacingOccurrences(of: "\"multiclass\"", with: "\"binary\""), "exactly 2 labels"),
        (valid.replacingOccurrences(of: "\"task\": \"multiclass\",", with: "\"task\": \"multiclass\", \"labelTitles\": {\"z\": \"Zed\"},"),
         "labelTitles names \"z\""),
        (valid.replacingOccurrences(of: "\"task\": \"multiclass\",", with: "\"task\": \"multiclass\", \"labelTitles\": {\"a\": \" \"},"),
         "1 to 64 printable"),
        (valid.replacingOccurrences(of: "\"negative\": [\"b\"]", with: "\"negative\": [\"b\"], \"labelTitles\": {\"b\": \"Bee\"}"),
         "derived result d: labelTitles names \"b\""),
    ])
    func invalidManifestIsRefusedWithAReason(json: String, reason: String) {
        #expect {
            _ = try manifest(json)
        } throws: { error in
            let e = error as! ModelError
            return e.kind == .invalidManifest && e.message.contains(reason)
        }
    }

    @Test func labelTitlesAreOptionalAndPartial() throws {
        let json = Self.valid.replacingOccurrences(of: "\"task\": \"multiclass\",", with: "\"task\": \"multiclass\", \"labelTitles\": {\"a\": \"Alpha\"},")
            .replacingOccurrences(of: "\"negative\": [\"b\"]", with: "\"negative\": [\"b\"], \"labelTitles\": {\"no\": \"No finding\"}")
        let m = try manifest(json)
        #expect(m.models[0].labelTitles == ["a": "Alpha"])
        #expect(m.models[0].derived?[0].labelTitles == ["no": "No finding"])
        #expect(try manifest(Self.valid).models[0].labelTitles == nil)
    }

    @Test func missingManifestIsAModelProblem() {
        #expect(throws: ModelError.self) { _ = try ModelManifest.load(from: URL(fileURLWithPath: "/nonexistent/manifest.json")) }
    }
}
