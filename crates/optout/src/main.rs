//! The `optout` command: a thin wrapper over the library's command dispatcher.

fn main() -> std::process::ExitCode {
    optout::run()
}
