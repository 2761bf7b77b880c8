#!/usr/bin/env bash
# Pre-extract the MER-Caption+ features: frames, face crops, audio and AU texts, as
#   $SAVE_ROOT/mercaptionplus/{frame,face}_CLIP_VIT_LARGE_8frms/, audio_HUBERT_LARGE_8clips/,
#   au_CLIP_VITB32_8frms/ and extraction_report.json
# Point the training config's preextracted_root at $SAVE_ROOT/mercaptionplus.
#
# Every variable below can be set from the environment, e.g.
#   DATA_ROOT=/data/MER-Caption+ CLIP_PATH=/models/clip-vit-large-patch14 \
#   HUBERT_PATH=/models/hubert-large-ll60k bash scripts/extract_mercaptionplus_features.sh
# Extra arguments go to the extractor (e.g. --overwrite, --modality audio, --shard 0/4).
# NPROC=8 runs one process per GPU under torchrun; each takes its share of the samples.
# Interrupted? Run the same command again: finished outputs are kept and skipped.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

DATA_ROOT="${DATA_ROOT:-}"                        # the MER-Caption+ folder (required)
VIDEO_ROOT="${VIDEO_ROOT:-$DATA_ROOT/video}"
AUDIO_ROOT="${AUDIO_ROOT:-$DATA_ROOT/audio}"      # absent: audio is read from the videos
FACE_ROOT="${FACE_ROOT:-$DATA_ROOT/openface_face}" # absent: no face features
MER_FACTORY_OUTPUT="${MER_FACTORY_OUTPUT:-$DATA_ROOT/mer_factory_output}" # absent: no AU features
CSV_PATH="${CSV_PATH:-$DATA_ROOT/track2_train_mercaptionplus.csv}"
CSV_COLUMN="${CSV_COLUMN:-name}"
SAVE_ROOT="${SAVE_ROOT:-$DATA_ROOT/features}"
DATASET="${DATASET:-mercaptionplus}"
# Hub ids download on first use; set local model directories on machines without hub access.
CLIP_PATH="${CLIP_PATH:-openai/clip-vit-large-patch14}"
HUBERT_PATH="${HUBERT_PATH:-facebook/hubert-large-ll60k}"
AU_CLIP_MODEL="${AU_CLIP_MODEL:-ViT-B-32}"
AU_CLIP_PRETRAINED="${AU_CLIP_PRETRAINED:-openai}"
MODALITY="${MODALITY:-all}"
FRAME_SAMPLING="${FRAME_SAMPLING:-uniform}"       # or emotion_peak (peaks from the AU JSONs)
FRAME_N_FRMS="${FRAME_N_FRMS:-8}"
CLIPS_PER_VIDEO="${CLIPS_PER_VIDEO:-8}"
DEVICE="${DEVICE:-cuda}"                          # plain cuda = cuda:LOCAL_RANK under torchrun
DTYPE="${DTYPE:-fp32}"
BATCH_SIZE="${BATCH_SIZE:-32}"
NUM_WORKERS="${NUM_WORKERS:-8}"
NPROC="${NPROC:-1}"
PYTHON="${PYTHON:-python}"

if [[ -z "$DATA_ROOT" ]]; then
    echo "set DATA_ROOT to the MER-Caption+ folder (e.g. DATA_ROOT=/data/MER-Caption+ bash $0)" >&2
    exit 2
fi

args=(
    --dataset "$DATASET" --modality "$MODALITY" --device "$DEVICE" --dtype "$DTYPE"
    --video_root "$VIDEO_ROOT" --save_root "$SAVE_ROOT"
    --visual_encoder CLIP_VIT_LARGE --visual_encoder_path "$CLIP_PATH"
    --acoustic_encoder HUBERT_LARGE --acoustic_encoder_path "$HUBERT_PATH"
    --au_clip_model "$AU_CLIP_MODEL" --au_clip_pretrained "$AU_CLIP_PRETRAINED"
    --frame_sampling "$FRAME_SAMPLING" --frame_n_frms "$FRAME_N_FRMS" --clips_per_video "$CLIPS_PER_VIDEO"
    --batch_size "$BATCH_SIZE" --num_workers "$NUM_WORKERS"
)
[[ -f "$CSV_PATH" ]] && args+=(--csv_path "$CSV_PATH" --csv_column "$CSV_COLUMN")
[[ -d "$AUDIO_ROOT" ]] && args+=(--audio_root "$AUDIO_ROOT")
if [[ -d "$FACE_ROOT" ]]; then args+=(--face_root "$FACE_ROOT"); else echo "[extract] no $FACE_ROOT: skipping face features" >&2; fi
if [[ -d "$MER_FACTORY_OUTPUT" ]]; then
    args+=(--mer-factory-output "$MER_FACTORY_OUTPUT")
else
    echo "[extract] no $MER_FACTORY_OUTPUT: skipping AU features" >&2
fi

cd "$REPO_ROOT"
if (( NPROC > 1 )); then
    exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" \
        extract_multimodal_features_precompute.py "${args[@]}" "$@"
fi
exec "$PYTHON" extract_multimodal_features_precompute.py "${args[@]}" "$@"
