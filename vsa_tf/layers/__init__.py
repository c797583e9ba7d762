"""Keras layers of vsa_tf (one public layer per module, `keras.ops` only, registered as "vsa_tf>Name").

Image side:
- `backbones.Backbone` / `build_backbone`: the built-in conv net or a keras.applications network (local weights).
- `roi_pooling.RoIAlign`: bilinear RoI pooling from the shared feature map (Fast R-CNN / Mask R-CNN).
- `region_features.RegionFeatureExtractor`: backbone once per image + RoIAlign -> [B, R, D].
- `region_encoder.RegionEncoder`: v = W_m CNN(I_b) + b_m (Karpathy & Fei-Fei 2015, eq. 1).

Region proposals (Ren et al. 2015, the RPN of Faster R-CNN; anchors from keras-cv's `AnchorGenerator`):
- `region_proposal_head.RegionProposalHead`: objectness logit and box deltas per anchor.
- `proposal_targets.ProposalTargets`: anchors matched to boxes by IoU, sampled, encoded as deltas.
- `proposal_decoder.ProposalDecoder`: decoded, clipped, NMS-filtered top-K proposals.

Sentence side:
- `brnn.BidirectionalRNNEncoder`: the bidirectional ReLU RNN (Karpathy & Fei-Fei 2015, eqs. 2-6).
- `bag_of_words.BagOfWordsEncoder`: the bag-of-words ablation.
- `lstm_sentence_encoder`, `linear_sentence_encoder`: Kiros et al. 2014 sentence encoders.

Scores and losses:
- `alignment_score.AlignmentScore`: S_kl = sum_t max_i v_i . s_t (eq. 8), or eq. 7.
- `ranking_loss.RankingLoss`: the bidirectional max-margin loss (eq. 9), optional hardest negative.
- `contrastive_loss`: Kiros et al. 2014 pairwise ranking loss.

Generation: `multimodal_rnn` (Karpathy & Fei-Fei 2015, eqs. 13-15), `scnlm` (Kiros et al. 2014).

Modules are imported on use (`from vsa_tf.layers.brnn import BidirectionalRNNEncoder`), so importing one
layer never pulls in the others.
"""
