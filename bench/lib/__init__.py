"""What the bench scripts share (standard library only), one concern a module: loadclient (the upload
client), proxy (the counting Firestore proxy and its log), procs (process sampling from /proc),
emulator (the Firestore emulator read directly) and report (reading a run's output for RESULTS.md).
The scripts in bench/ import it as `lib` (a script's folder is on sys.path)."""
