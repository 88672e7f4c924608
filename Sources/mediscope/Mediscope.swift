import ArgumentParser

@main
struct Mediscope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mediscope",
        abstract: "Medical image analysis with TorchScript models and Grad-CAM.",
        subcommands: [Analyze.self, Serve.self, UserCommand.self, OutboxCommand.self, DicomOutCommand.self, StoreCommand.self]
    )
}

/// Exit statuses shared by the subcommands.
enum ExitStatus {
    static let badInput = ExitCode(2)
    static let modelProblem = ExitCode(3)
}
