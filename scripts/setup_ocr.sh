#!/usr/bin/env bash
# Tesseract for OCR of scanned PDFs and images, from Debian's packages (the Dockerfile
# installs the same two). RAG_OCR_LANGUAGES beyond English need tesseract-ocr-<lang>.
set -euo pipefail
if command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx eng; then
  exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[setup] installing Debian tesseract-ocr (OCR)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null
