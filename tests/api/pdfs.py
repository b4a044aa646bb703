"""PDFs for the RAG tests, generated with fpdf2 (never downloaded)."""

from __future__ import annotations

from fpdf import FPDF

# page -> the one fact on that page
FACTS = {
    1: "The lighthouse on Gull Island was built in 1887 by the engineer Marta Velez.",
    2: "The secret code for the vault in the museum basement is 7391.",
    3: "The island ferry leaves every morning at 6:45 from Pier Nine.",
}
FILLER = {
    1: "Sea birds nest on the northern cliffs, and the tides there are strong in winter.",
    2: "The museum shows old fishing nets, maps of the coast and paintings of storms.",
    3: "Visitors often walk along the harbour wall and buy smoked fish at the market.",
}


def facts_pdf() -> bytes:
    """Three pages, each with filler around its fact from ``FACTS``."""
    pdf = FPDF()
    for page, fact in FACTS.items():
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        filler = " ".join([FILLER[page]] * 6)
        pdf.multi_cell(0, 8, f"{filler} {fact} {filler}")
    return bytes(pdf.output())


def encrypted_pdf() -> bytes:
    """A PDF that needs a password to open."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "Nothing to see without the password.")
    pdf.set_encryption(owner_password="owner", user_password="user")
    return bytes(pdf.output())


def drawing_only_pdf() -> bytes:
    """A PDF whose only page holds a rectangle: no text to extract."""
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60)
    return bytes(pdf.output())
