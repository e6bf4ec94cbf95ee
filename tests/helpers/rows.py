"""Report rows built by hand for the report tests: the quality fields report/table.py's
`quality_fields` gives a row whose quality is top-1 on labels."""


def top1_quality(top1):
    return {"quality": top1, "quality_metric": "top1" if top1 is not None else "none",
            "quality_label": "top-1" if top1 is not None else "not measured", "quality_chance": None,
            "quality_text": f"top-1 {100 * top1:.1f}%" if top1 is not None else "not measured"}
