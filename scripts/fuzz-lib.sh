# Shared by fuzz-brief.sh and fuzz-campaign.sh (sourced, not run): what each fuzz target is
# given, so that CI's brief runs and a campaign treat a target alike.

# fuzz_seed TARGET DIR: the target's committed corpus into DIR, the .zst inputs decompressed.
fuzz_seed() {
  mkdir -p "$2"
  for f in "fuzz/corpus/$1/"*; do
    case "$f" in
      *.zst) zstd -dqf "$f" -o "$2/$(basename "${f%.zst}")" ;;
      *) cp "$f" "$2/" ;;
    esac
  done
}

# fuzz_limits TARGET: sets max (libFuzzer's -max_len) and rss (its -rss_limit_mb for a long
# run). Volumes and containers need 4.3 MB (an NTFS volume of 2 MiB, a VHDX whose BAT and
# metadata lie in its first 4 MiB); hives 1.1 MB. libFuzzer keeps its whole corpus in memory:
# a long run over volumes of up to 2 MiB grows past 1 GiB on the corpus alone (the inputs
# replay in under 100 MB; fuzz_corpus bounds that at 512 MiB), so those targets get 2 GiB.
fuzz_limits() {
  rss=1024
  case "$1" in
    container|vhd|vhdx|vmdk|qcow2|e01|ntfs_volume|ntfs_write|fat_volume) max=4300000 rss=2048 ;;
    partition_table|vss) max=4300000 ;;
    regf_hive|regf_edit) max=1100000 ;;
    *) max=262144 ;;
  esac
}
