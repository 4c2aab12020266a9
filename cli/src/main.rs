use std::process::ExitCode;

fn main() -> ExitCode {
    sqlflight::install_panic_hook();
    ExitCode::from(sqlflight::run_cli(std::env::args_os()))
}
