# Sourced (bash) by the scripts that compile tools from the Go module proxy into the shared cache.
. "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"

command -v go >/dev/null || { printf 'Go is required (go1.24 or newer); install it first\n' >&2; exit 1; }

# A main package of another module, built from a wrapper module that requires it:
#   build_main_package NAME VERSION MODULE [PACKAGE] -> $CACHE/NAME-VERSION/bin/NAME
build_main_package() {
  local name="$1" version="$2" module="$3" package="${4:-$3}" out="$CACHE/$1-$2"
  if [[ -f "$out/.complete" ]]; then log "$name $version cached in $out"; return; fi
  local src="$out/src"
  rm -rf "$out" && mkdir -p "$src"
  log "building $name $version"
  printf 'module nkvm.local/%s-binary\n\ngo 1.24.0\n\nrequire %s %s\n' "$name" "$module" "$version" > "$src/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" > "$src/tools.go"
  (cd "$src" && go mod tidy && go build -ldflags "-s -w" -o "$out/bin/$name" "$package")
  touch "$out/.complete"
  log "$name $version built in $out/bin"
}
