/**
 * The WGSL program of the game's losses: from D's logits, each loss's
 * value, its gradient with respect to the logits, and the step's figures.
 *
 * @module
 */

/**
 * The losses from D's logits, l = log(D / (1 - D)), and their gradients
 * with respect to l (one workgroup).
 *
 * D's step (mode 0): rows 0..B-1 are real, B..2B-1 generated; the loss is
 * BCE(D(x), t) + BCE(D(G(z)), 0) (`discriminatorLoss`), whose gradient is
 * (sigmoid(l) - t) / B on a real row and sigmoid(l) / B on a generated one,
 * times D's loss scale. It adds the loss, V(D, G) (eq. 1), mean D(x),
 * mean D(G(z)) and both accuracies to the sums in F[0..5].
 *
 * G's step on B generated rows (from row lOff): non-saturating (mode 1),
 * -mean log D(G(z)),
 * gradient (sigmoid(l) - 1) / B; saturating (mode 2), mean log(1 - D(G(z))),
 * gradient -sigmoid(l) / B. It adds the loss to F[6].
 *
 * The hinge game, where l is D's score: D's step (mode 3), mean max(0,
 * 1 - l) on real rows plus mean max(0, 1 + l) on generated ones, gradient
 * -1 / B on a real row with l < 1, 1 / B on a generated row with l > -1,
 * else 0 (tfjs's relu gradient is 0 at 0), times D's loss scale; the other
 * figures as in mode 0. G's step (mode 4), -mean l, gradient -1 / B.
 *
 * Least squares (LSGAN), l D's score: D's step (mode 5), 1/2 mean (l - 1)^2
 * on real rows plus 1/2 mean l^2 on generated ones, gradient (l - 1) / B
 * and l / B times D's loss scale; G's step (mode 6), 1/2 mean (l - 1)^2,
 * gradient (l - 1) / B.
 */
export const LOSS_CODE = `
struct U { B: u32, mode: u32, label: f32, scale: f32, lOff: u32 }
@group(0) @binding(0) var<storage, read> L: array<f32>;
@group(0) @binding(1) var<storage, read_write> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> F: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
var<workgroup> part: array<array<f32, 6>, 256>;

// log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|))
fn logSigmoid(x: f32) -> f32 { return min(x, 0.0) - log(1.0 + exp(-abs(x))); }

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  let b = f32(u.B);
  var s: array<f32, 6>;
  let dStep = u.mode == 0u || u.mode == 3u || u.mode == 5u;
  let rows = select(u.B, 2u * u.B, dStep);
  for (var i = t; i < rows; i += 256u) {
    let l = L[u.lOff + i];
    let p = 1.0 / (1.0 + exp(-l));
    if (u.mode == 0u) {
      if (i < u.B) {
        G[i] = (p - u.label) / b * u.scale;
        s[0] -= (u.label * logSigmoid(l) + (1.0 - u.label) * logSigmoid(-l)) / b;
      } else {
        G[i] = p / b * u.scale;
        s[0] -= logSigmoid(-l) / b;
      }
    } else if (u.mode == 3u) {
      if (i < u.B) {
        G[i] = select(0.0, -1.0 / b * u.scale, l < 1.0);
        s[0] += max(1.0 - l, 0.0) / b;
      } else {
        G[i] = select(0.0, 1.0 / b * u.scale, l > -1.0);
        s[0] += max(1.0 + l, 0.0) / b;
      }
    } else if (u.mode == 5u) {
      if (i < u.B) {
        G[i] = (l - 1.0) / b * u.scale;
        s[0] += 0.5 * (l - 1.0) * (l - 1.0) / b;
      } else {
        G[i] = l / b * u.scale;
        s[0] += 0.5 * l * l / b;
      }
    } else if (u.mode == 6u) {
      G[i] = (l - 1.0) / b;
      s[0] += 0.5 * (l - 1.0) * (l - 1.0) / b;
    } else if (u.mode == 1u) {
      G[i] = (p - 1.0) / b;
      s[0] -= logSigmoid(l) / b;
    } else if (u.mode == 2u) {
      G[i] = -p / b;
      s[0] += logSigmoid(-l) / b;
    } else {
      G[i] = -1.0 / b;
      s[0] -= l / b;
    }
    if (dStep) {
      // V(D, G), D(x), D(G(z)) and the accuracies, whatever the loss.
      if (i < u.B) {
        s[1] += logSigmoid(l) / b;
        s[2] += p / b;
        s[4] += select(0.0, 1.0, l > 0.0) / b;
      } else {
        s[1] += logSigmoid(-l) / b;
        s[3] += p / b;
        s[5] += select(0.0, 1.0, l < 0.0) / b;
      }
    }
  }
  part[t] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) {
      for (var k = 0u; k < 6u; k++) { part[t][k] += part[t + w][k]; }
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    if (dStep) {
      for (var k = 0u; k < 6u; k++) { F[k] += part[0][k]; }
    } else {
      F[6] += part[0][0];
    }
  }
}`;
