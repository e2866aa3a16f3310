//! The `guichet` binary: parse the command line and hand over to [`guichet::cli`].

fn main() -> std::process::ExitCode {
    guichet::cli::main()
}
