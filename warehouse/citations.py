"""What to cite and acknowledge for the data a warehouse holds: HSC-SSP papers and
acknowledgement, the spectroscopic surveys behind each ``specz_flag_*``, and GalaxiesML.

Read by release manifests and export attributes alike (one place for the text).
"""

from __future__ import annotations

__all__ = ["CITATION_GALAXIESML", "CITATIONS_HSC", "HSC_ACKNOWLEDGEMENT", "SPECZ_CITATIONS"]

HSC_ACKNOWLEDGEMENT = (
    "The Hyper Suprime-Cam (HSC) collaboration includes the astronomical communities of Japan and "
    "Taiwan, and Princeton University. This paper is based on data collected at the Subaru "
    "Telescope and retrieved from the HSC data archive system, which is operated by the Subaru "
    "Telescope and Astronomy Data Center (ADC) at NAOJ. (Use the full HSC-SSP acknowledgement "
    "text given on the HSC-SSP data release site.)"
)
CITATIONS_HSC = [
    "Aihara H. et al. 2018, PASJ 70, S4: The Hyper Suprime-Cam SSP Survey: overview and "
    "survey design",
    "Aihara H. et al. 2018, PASJ 70, S8: First data release of the Hyper Suprime-Cam Subaru "
    "Strategic Program",
    "Aihara H. et al. 2019, PASJ 71, 114: Second data release of the Hyper Suprime-Cam Subaru "
    "Strategic Program (PDR2)",
    "Bosch J. et al. 2018, PASJ 70, S5: The Hyper Suprime-Cam software pipeline",
]
SPECZ_CITATIONS = {
    "specz_flag_sdss_dr14": "SDSS DR14: Abolfathi B. et al. 2018, ApJS 235, 42",
    "specz_flag_deep3_v201701": "DEEP2/DEEP3: Newman J. A. et al. 2013, ApJS 208, 5; "
    "Cooper M. C. et al. 2012, MNRAS 419, 3018",
    "specz_flag_primus_dr1": "PRIMUS: Coil A. L. et al. 2011, ApJ 741, 8; Cool R. J. et al. 2013, "
    "ApJ 767, 118",
    "specz_flag_vipers_pdr1": "VIPERS PDR1: Garilli B. et al. 2014, A&A 562, A23",
    "specz_flag_vvds": "VVDS: Le Fevre O. et al. 2013, A&A 559, A14",
    "specz_flag_gama_dr2": "GAMA DR2: Liske J. et al. 2015, MNRAS 452, 2087",
    "specz_flag_wigglez_dr1": "WiggleZ: Drinkwater M. J. et al. 2010, MNRAS 401, 1429",
    "specz_flag_zcosmos_dr3": "zCOSMOS: Lilly S. J. et al. 2009, ApJS 184, 218",
    "specz_flag_udsz_mar2014": "UDSz: Bradshaw E. J. et al. 2013, MNRAS 433, 194; "
    "McLure R. J. et al. 2013, MNRAS 428, 1088",
    "specz_flag_3dhst_v4_1_5": "3D-HST: Skelton R. E. et al. 2014, ApJS 214, 24; "
    "Momcheva I. G. et al. 2016, ApJS 225, 27",
    "specz_flag_fmos_cosmos_v1_0": "FMOS-COSMOS: Silverman J. D. et al. 2015, ApJS 220, 12",
}
CITATION_GALAXIESML = (
    "GalaxiesML (the quality rules, deduplication and splits this warehouse reproduces): "
    "Do T. et al. 2024, GalaxiesML: a dataset of galaxy images, photometry, redshifts, and "
    "structural parameters for machine learning (arXiv preprint)"
)
