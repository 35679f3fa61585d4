//! Per-token loss terms of the SUPO objective and their exact derivatives with respect to the
//! token's log-probability, following verl's `compute_policy_loss` (vanilla, clip-higher, dual
//! clip) and `kl_penalty` (k1, k2, low_var_kl) to the letter — including where a clamp or a clip
//! makes the derivative zero and how `max`/`min` split the gradient on ties (as PyTorch does).
//!
//! Generic over the float type: the `supo loss` contract evaluates it in f64, kernels in f32.

use super::{KlType, LossConfig};
use num_traits::Float;

/// Bound of verl's clamp on `log π − log π_old` and on the k3 log-ratio.
pub const LOG_RATIO_CLAMP: f64 = 20.0;
/// Bound of verl's clamp on the k3 estimate.
pub const LOW_VAR_KL_CLAMP: f64 = 10.0;

/// [`LossConfig`] converted to the float type of a computation.
#[derive(Debug, Clone, Copy)]
pub struct SurrogateParams<F> {
    /// `1 − ε_low`.
    pub ratio_min: F,
    /// `1 + ε_high`.
    pub ratio_max: F,
    /// Dual clip constant.
    pub dual_clip: Option<F>,
    /// KL weight.
    pub kl_coef: F,
    /// KL estimator.
    pub kl_type: KlType,
}

impl<F: Float> SurrogateParams<F> {
    /// Converts a [`LossConfig`].
    pub fn new(config: &LossConfig) -> Self {
        let f = |v: f64| F::from(v).unwrap_or_else(F::nan);
        SurrogateParams {
            ratio_min: f(1.0 - config.clip_low),
            ratio_max: f(1.0 + config.clip_high),
            dual_clip: config.dual_clip.map(f),
            kl_coef: f(config.kl_coef),
            kl_type: config.kl_type,
        }
    }
}

/// The loss terms of one token and their derivatives w.r.t. its `log π`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenTerms<F> {
    /// Clipped surrogate `ℓ_t`.
    pub pg: F,
    /// `∂ℓ_t / ∂log π`.
    pub d_pg: F,
    /// KL estimate (0 when `kl_coef == 0`).
    pub kl: F,
    /// `∂kl_t / ∂log π`.
    pub d_kl: F,
    /// verl's `pg_clipfrac` indicator: the clipped branch is strictly larger.
    pub clipped: bool,
    /// verl's `pg_clipfrac_lower` indicator: the dual clip is active.
    pub clipped_lower: bool,
    /// `−clamp(log π − log π_old, ±20)`, the summand of `approx_kl`.
    pub approx_kl: F,
}

impl<F: Float> TokenTerms<F> {
    /// `∂(ℓ_t + kl_coef · kl_t) / ∂log π`.
    #[inline]
    pub fn d_logp(&self, kl_coef: F) -> F {
        self.d_pg + kl_coef * self.d_kl
    }
}

/// Derivative of `max(a, b)` given the derivatives of `a` and `b` (PyTorch splits ties).
#[inline(always)]
fn d_max<F: Float>(a: F, b: F, da: F, db: F) -> F {
    if a > b {
        da
    } else if a < b {
        db
    } else {
        (da + db) / (F::one() + F::one())
    }
}

/// Evaluates the per-token terms for one token.
///
/// `ref_logp` is read only when `params.kl_coef != 0`.
#[inline]
pub fn token_terms<F: Float>(
    logp: F,
    old_logp: F,
    ref_logp: F,
    advantage: F,
    params: &SurrogateParams<F>,
) -> TokenTerms<F> {
    let zero = F::zero();
    let clamp = F::from(LOG_RATIO_CLAMP).unwrap_or_else(F::nan);
    // r = exp(clamp(logπ − logπ_old, ±20)); torch.clamp passes the gradient on [min, max].
    let raw = logp - old_logp;
    let log_ratio = raw.max(-clamp).min(clamp);
    let ratio = log_ratio.exp();
    let d_ratio = if raw >= -clamp && raw <= clamp {
        ratio
    } else {
        zero
    };

    let loss1 = -advantage * ratio;
    let d_loss1 = -advantage * d_ratio;
    let clipped_ratio = ratio.max(params.ratio_min).min(params.ratio_max);
    let d_clipped = if ratio >= params.ratio_min && ratio <= params.ratio_max {
        d_ratio
    } else {
        zero
    };
    let loss2 = -advantage * clipped_ratio;
    let d_loss2 = -advantage * d_clipped;
    let clip1 = loss1.max(loss2);
    let d_clip1 = d_max(loss1, loss2, d_loss1, d_loss2);
    let clipped = loss2 > loss1;

    let (pg, d_pg, clipped_lower) = match params.dual_clip {
        Some(c) if advantage < zero => {
            let loss3 = -advantage * c;
            // min(loss3, clip1): loss3 does not depend on log π.
            let d = d_max(-loss3, -clip1, zero, d_clip1);
            (loss3.min(clip1), d, clip1 > loss3)
        }
        _ => (clip1, d_clip1, false),
    };

    let (kl, d_kl) = if params.kl_coef != zero {
        kl_term(logp, ref_logp, params.kl_type)
    } else {
        (zero, zero)
    };

    TokenTerms {
        pg,
        d_pg,
        kl,
        d_kl,
        clipped,
        clipped_lower,
        approx_kl: -log_ratio,
    }
}

/// A KL estimate and its derivative w.r.t. `log π`.
#[inline]
pub fn kl_term<F: Float>(logp: F, ref_logp: F, kl_type: KlType) -> (F, F) {
    let zero = F::zero();
    match kl_type {
        KlType::K1 => (logp - ref_logp, F::one()),
        KlType::K2 => {
            let d = logp - ref_logp;
            (d * d / (F::one() + F::one()), d)
        }
        KlType::LowVarKl => {
            let clamp = F::from(LOG_RATIO_CLAMP).unwrap_or_else(F::nan);
            let out_clamp = F::from(LOW_VAR_KL_CLAMP).unwrap_or_else(F::nan);
            let raw = ref_logp - logp;
            let x = raw.max(-clamp).min(clamp);
            let dx = if raw >= -clamp && raw <= clamp {
                -F::one()
            } else {
                zero
            };
            let ratio = x.exp();
            let kld = ratio - x - F::one();
            let d_kld = (ratio - F::one()) * dx;
            let inside = kld >= -out_clamp && kld <= out_clamp;
            (
                kld.max(-out_clamp).min(out_clamp),
                if inside { d_kld } else { zero },
            )
        }
    }
}
