"""Dimensionality reduction of session behaviour: PCA or factor analysis, chosen and explained.

- The features are log-scaled (counts, durations), imputed with the training median and
  standardised, so each counts alike whatever its unit.
- **How many components**: Horn's parallel analysis. A component is kept when its eigenvalue
  (of the correlation matrix) beats the 95th percentile of those of random data of the same shape:
  what correlation noise alone would give.
- **Which method**: PCA and factor analysis (varimax-rotated) are both fitted with that many
  components on half the training sessions and scored by their log-likelihood on the other half.
  Both are Gaussian latent models; factor analysis also models each feature's own noise, which
  matters when features carry unequal amounts of it. The better held-out fit is kept, and the
  output says so with the numbers.
- **In words**: each component is named by the group of features that load on it most
  ("engagement: pages +0.91, clicks +0.84, time on site +0.77").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .features import BEHAVIOUR

#: what a component is about, by the features that load on it
GROUPS = {
    "engagement": ("pages", "events", "clicks", "time_on_site", "forms"),
    "pace": ("dwell", "click_gap", "form_fill"),
    "regularity": ("click_spread",),
    "exploration": ("unique_page_share",),
}
LOADING = 0.4  #: loadings at least this large describe a component
MAX_COMPONENTS = 6


@dataclass
class Reduction:
    """A fitted reduction: ``transform`` maps behaviour features to the reduced space."""

    method: str
    features: list[str]
    components: int
    model: Any
    median_: np.ndarray
    mean_: np.ndarray
    scale_: np.ndarray
    loadings: np.ndarray                     # [components, features]
    names: list[str] = field(default_factory=list)
    eigenvalues: list[float] = field(default_factory=list)
    random_eigenvalues: list[float] = field(default_factory=list)
    explained: list[float] = field(default_factory=list)  # share of the standardised variance
    loglik: dict[str, float] = field(default_factory=dict)
    why: str = ""

    def standardise(self, x: np.ndarray) -> np.ndarray:
        x = np.where(np.isfinite(x), x, self.median_)
        return (x - self.mean_) / self.scale_

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.model.transform(self.standardise(x))

    def residual(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Behaviour the reduced space does not describe (see :meth:`GaussianLatent.residual`)."""
        return self.model.residual(self.standardise(x), z)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "components": self.components, "features": self.features,
                "names": self.names, "explained": [round(v, 3) for v in self.explained],
                "eigenvalues": [round(v, 3) for v in self.eigenvalues],
                "random_eigenvalues": [round(v, 3) for v in self.random_eigenvalues],
                "loglik": {k: round(v, 3) for k, v in self.loglik.items()}, "why": self.why}


def parallel_analysis(z: np.ndarray, rng: np.random.Generator, draws: int = 20) -> tuple[int, np.ndarray, np.ndarray]:
    """Components whose correlation eigenvalue beats the 95th percentile of random data's."""
    n, p = z.shape
    eig = np.sort(np.linalg.eigvalsh(np.corrcoef(z, rowvar=False)))[::-1]
    m = min(n, 5000)
    rand = np.empty((draws, p))
    for d in range(draws):
        r = rng.standard_normal((m, p))
        rand[d] = np.sort(np.linalg.eigvalsh(np.corrcoef(r, rowvar=False)))[::-1]
    cut = np.quantile(rand, 0.95, axis=0)
    above = eig > cut
    k = int(np.argmin(above)) if not above.all() else p
    return max(2, min(k, MAX_COMPONENTS, p)), eig, cut


def describe_component(loading: np.ndarray, features: list[str]) -> str:
    """``engagement: pages +0.91, clicks +0.84`` from one component's loadings."""
    big = [j for j in np.argsort(-np.abs(loading)) if abs(loading[j]) >= LOADING]
    if not big:
        big = [int(np.argmax(np.abs(loading)))]
    weight = {g: sum(loading[j] ** 2 for j in big if features[j] in members) for g, members in GROUPS.items()}
    group = max(weight, key=weight.get)
    parts = ", ".join(f"{BEHAVIOUR[features[j]][2]} {loading[j]:+.2f}" for j in big[:4])
    return f"{group}: {parts}"


def _label(method: str) -> str:
    return "PCA" if method == "pca" else method


def varimax(loadings: np.ndarray, iters: int = 100, tol: float = 1e-8) -> np.ndarray:
    """Varimax rotation of ``[features, components]`` loadings (Kaiser 1958): each component
    loads on few features, which makes it easy to name."""
    p, k = loadings.shape
    rot = np.eye(k)
    var = 0.0
    for _ in range(iters):
        lam = loadings @ rot
        u, s, vt = np.linalg.svd(loadings.T @ (lam ** 3 - lam @ np.diag(np.sum(lam ** 2, axis=0)) / p))
        rot = u @ vt
        if s.sum() < var * (1 + tol):
            break
        var = s.sum()
    return loadings @ rot


@dataclass
class GaussianLatent:
    """PCA (probabilistic, Tipping and Bishop) or factor analysis, fitted from the covariance
    matrix alone: the data enter once, through ``x.T @ x``, so a fit on a million sessions costs
    what one on a thousand does (scikit-learn's FactorAnalysis takes an SVD of the data per EM
    step). ``transform`` gives the posterior mean of the latent factors."""

    kind: str
    k: int
    max_iter: int = 1000
    tol: float = 1e-6

    def fit(self, z: np.ndarray) -> "GaussianLatent":
        self.mean_ = z.mean(axis=0)
        c = z - self.mean_
        cov = c.T @ c / len(z)
        p = cov.shape[0]
        if self.kind == "pca":
            val, vec = np.linalg.eigh(cov)
            val, vec = val[::-1], vec[:, ::-1]
            self.noise_ = np.full(p, val[self.k:].mean() if p > self.k else 0.0)
            w = vec[:, : self.k] * np.sqrt(np.maximum(val[: self.k] - self.noise_[0], 0.0))
            self.vectors_ = vec[:, : self.k]
        else:  # EM for factor analysis on the covariance (the same steps as scikit-learn's, per Barber)
            psi, old = np.ones(p), -np.inf
            var = np.diag(cov).copy()
            for _ in range(self.max_iter):
                sq = np.sqrt(psi) + 1e-12
                val, vec = np.linalg.eigh(cov / np.outer(sq, sq))
                val, vec = val[::-1], vec[:, ::-1]
                w = vec[:, : self.k] * np.sqrt(np.maximum(val[: self.k] - 1.0, 0.0)) * sq[:, None]
                ll = -(np.sum(np.log(val[: self.k])) + val[self.k:].sum() + np.sum(np.log(psi)))
                if ll - old < self.tol:
                    break
                old = ll
                psi = np.maximum(var - np.sum(w ** 2, axis=1), 1e-12)
            self.noise_ = psi
            w = varimax(w)
            w = w[:, np.argsort(-np.sum(w ** 2, axis=0), kind="stable")]  # the largest factor first
        self.components_ = w.T  # [k, p]
        return self

    def covariance(self) -> np.ndarray:
        return self.components_.T @ self.components_ + np.diag(self.noise_)

    def score(self, z: np.ndarray) -> float:
        """Average Gaussian log-likelihood of ``z`` under the model (per session)."""
        sigma = self.covariance()
        sign, logdet = np.linalg.slogdet(sigma)
        c = z - self.mean_
        maha = np.einsum("ij,ij->i", c @ np.linalg.inv(sigma), c)
        return float(-0.5 * (z.shape[1] * np.log(2 * np.pi) + logdet + maha.mean()))

    def residual(self, z: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """How much of each session the components leave unexplained: the squared residual of
        its reconstruction, per feature in units of that feature's own noise, summed."""
        back = scores @ (self.vectors_.T if self.kind == "pca" else self.components_)
        return (((z - self.mean_ - back) ** 2) / np.maximum(self.noise_, 1e-6)).sum(axis=1)

    def transform(self, z: np.ndarray) -> np.ndarray:
        c = z - self.mean_
        if self.kind == "pca":
            return c @ self.vectors_
        w = self.components_
        wpsi = w / self.noise_
        cov_z = np.linalg.inv(np.eye(self.k) + wpsi @ w.T)
        return c @ wpsi.T @ cov_z


def fit_reduction(x: np.ndarray, features: list[str], seed: int = 0, sample: int = 50_000) -> Reduction:
    """Fit on the training sessions' behaviour ``x`` ([sessions, features], log-scaled)."""
    rng = np.random.default_rng(seed)
    if len(x) > sample:
        x = x[rng.choice(len(x), sample, replace=False)]
    median = np.nanmedian(x, axis=0)
    filled = np.where(np.isfinite(x), x, median)
    mean, scale = filled.mean(axis=0), filled.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (filled - mean) / scale
    k, eig, cut = parallel_analysis(z, rng)
    half = rng.permutation(len(z))
    a, b = z[half[: len(z) // 2]], z[half[len(z) // 2:]]
    ll = {kind: GaussianLatent(kind, k).fit(a).score(b) for kind in ("pca", "factor analysis")}
    method = max(ll, key=ll.get)
    model = GaussianLatent(method, k).fit(z)
    loadings = model.components_ * np.where(model.components_.sum(axis=1, keepdims=True) < 0, -1, 1)
    model.components_ = loadings  # mostly positive: "more engagement", not "less"
    if method == "pca":
        model.vectors_ = model.vectors_ * np.where(model.vectors_.sum(axis=0, keepdims=True) < 0, -1, 1)
    explained = list((loadings ** 2).sum(axis=1) / len(features))
    other = "factor analysis" if method == "pca" else "pca"
    reason = ("the features carry unequal amounts of their own noise, which factor analysis models"
              if method == "factor analysis" else "modelling each feature's own noise (factor analysis) does not fit better")
    why = (f"{k} components by parallel analysis (eigenvalues {', '.join(f'{e:.2f}' for e in eig[:k])} beat random "
           f"data's {', '.join(f'{c:.2f}' for c in cut[:k])}; the next, {eig[k]:.2f}, does not beat {cut[k]:.2f}); "
           f"{_label(method)} kept: held-out log-likelihood {ll[method]:.2f} per session against {ll[other]:.2f} "
           f"for {_label(other)} ({reason})") if k < len(eig) else f"{k} components; {_label(method)} kept by held-out log-likelihood"
    red = Reduction(method=method, features=list(features), components=k, model=model, median_=median, mean_=mean,
                    scale_=scale, loadings=loadings, eigenvalues=list(eig), random_eigenvalues=list(cut),
                    explained=explained, loglik=ll, why=why)
    red.names = [f"{'factor' if method == 'factor analysis' else 'component'} {i + 1}: "
                 f"{describe_component(loadings[i], red.features)}" for i in range(k)]
    return red
