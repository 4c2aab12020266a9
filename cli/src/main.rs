use std::process::ExitCode;

fn main() -> ExitCode {
    sqlflight::install_panic_hook();
    ExitCode::from(sqlflight::supervise::main_with_supervisor(
        std::env::args_os().collect(),
    ))
}
