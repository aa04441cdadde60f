//! The audit log's CSV export format: RFC 4180 rows with every text field quoted, and
//! values a spreadsheet would run as formulas defused.

use crate::error::AppError;

/// Rows as CSV (RFC 4180, CRLF). Every field that is not a number is quoted, with quotes
/// doubled: a `;`, `|` or tab inside stays in its cell whichever separator a spreadsheet
/// splits on, and so do commas, quotes and line breaks.
pub fn csv_rows(rows: impl Iterator<Item = [String; 12]>) -> Result<Vec<u8>, AppError> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::NonNumeric)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for row in rows {
        writer
            .write_record(&row)
            .map_err(|e| AppError::Internal(e.into()))?;
    }
    writer
        .into_inner()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("csv buffer: {e}")))
}

/// A value a spreadsheet would run as a formula gets a leading apostrophe, so an email or
/// user agent typed by an attacker stays text.
pub fn defused(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{csv_rows, defused};

    fn line(fields: [&str; 12]) -> String {
        let row = fields.map(defused);
        String::from_utf8(csv_rows(std::iter::once(row)).unwrap()).unwrap()
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        let mut fields = [""; 12];
        fields[0] = "7";
        fields[1] = "a,b";
        fields[2] = "say \"hi\"";
        fields[3] = "two\nlines";
        fields[4] = "a;=1+1";
        fields[5] = "a|b";
        fields[6] = "a\tb";
        fields[7] = "=1+2";
        fields[8] = "-1";
        fields[9] = "@SUM(A1)";
        fields[10] = "=HYPERLINK(\"x\",1)";
        fields[11] = "plain";
        assert_eq!(
            line(fields),
            "7,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"a;=1+1\",\"a|b\",\"a\tb\",\
             \"'=1+2\",\"'-1\",\"'@SUM(A1)\",\"'=HYPERLINK(\"\"x\"\",1)\",\"plain\"\r\n"
        );
        assert_eq!(defused("+1"), "'+1");
        assert_eq!(defused("a=b"), "a=b");
    }
}
