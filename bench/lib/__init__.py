"""What the bench scripts share (standard library only), one concern a module: loadclient (the upload
clients), proxy (the counting Firestore proxy and its log), procs (process sampling from /proc: CPU
time, the memory of process trees), emulator (the Firestore emulator read directly) and report
(reading a run's output for RESULTS.md).
The scripts in bench/ import it as `lib` (a script's folder is on sys.path)."""
