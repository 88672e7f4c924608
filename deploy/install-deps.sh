#!/usr/bin/env bash
# Installs the Debian 12 packages Mediscope builds, runs and tests with.
# Idempotent: only missing packages are installed, so `make` stays fast on a ready machine.
set -euo pipefail

PACKAGES=(
  # build + runtime libraries reached through C shims
  libtorch-dev libdcmtk-dev libopenjp2-7-dev libjpeg62-turbo-dev libpng-dev libwebp-dev libfcgi-dev libcurl4-openssl-dev libsqlite3-dev
  # DICOM test files (Tests/Reference/dicom_reference.py reads them where Debian installs them)
  python3-pydicom
  # the DICOM listener's tests send with DCMTK's own tools (echoscu, storescu, dcmodify), and from Orthanc as the PACS;
  # the SR and Secondary Capture downloads are checked with dsrdump (DCMTK) and dicom3tools' dciodvfy
  dcmtk dicom3tools orthanc orthanc-dicomweb
  # the store tests race a real sqlite3 process for the write lock
  sqlite3
  # password hashing (argon2id)
  libargon2-dev
  # model tooling: Debian's torch matches libtorch 1.13.1 exactly
  python3 python3-venv python3-torch python3-torchvision
  # serving and integration tests
  nginx-light curl
  # a self-signed certificate for the production nginx site in the render tests
  openssl
  # `make run` checks that its own nginx holds the port (ss); the scale-out tests make network namespaces (ip netns)
  iproute2
  # real-browser tests of the dashboard (Tests/Browser/dashboard.py, bench/dashboard-bytes.sh)
  chromium chromium-driver python3-selenium fonts-dejavu-core   # fonts: chromium only recommends them
  # memory checks of the shim
  valgrind
  # the Debian package (`make deb`, deploy/debian/): debhelper builds it, patchelf points the program at the
  # Swift runtime beside it; its test (Tests/Package/chroot.sh) makes a clean Debian 12 with debootstrap,
  # checks the package with lintian, its units with systemd-analyze (systemd) and its rotation with logrotate
  debhelper dpkg-dev patchelf debootstrap lintian systemd logrotate
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# The Firestore emulator (the Firestore store's tests) comes from Google's apt repository, with Debian's
# OpenJDK 17 to run it. Added only where it is missing; machines that have the Cloud CLI keep theirs.
EMULATOR_JAR=/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar
need_emulator=0
[ -f "$EMULATOR_JAR" ] || need_emulator=1
dpkg-query -W -f='${Status}' openjdk-17-jre-headless 2>/dev/null | grep -q "install ok installed" || missing+=(openjdk-17-jre-headless)

if [ ${#missing[@]} -eq 0 ] && [ "$need_emulator" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ "$need_emulator" -eq 1 ] && [ ! -f /etc/apt/sources.list.d/google-cloud-sdk.list ]; then
  echo "install-deps: adding Google's Cloud SDK apt repository for the Firestore emulator"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ca-certificates curl gnupg
  curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor --yes -o /usr/share/keyrings/cloud.google.gpg
  echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
    > /etc/apt/sources.list.d/google-cloud-sdk.list
fi
[ "$need_emulator" -eq 1 ] && missing+=(google-cloud-cli google-cloud-cli-firestore-emulator)
echo "install-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
