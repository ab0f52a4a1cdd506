"""COCO keypoint evaluation: result validation, OKS-NMS, rescoring and COCOeval scoring (no torch)."""
