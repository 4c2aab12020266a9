//! TPC-DS data generation (the `tpcdsgen` crate) into Parquet files typed by the
//! bundled TPC-DS schema (`corpora/tpcds/schema.sql`), cached by scale factor and
//! generator version, like [`crate::tpch`].
//!
//! Each table is generated as CSV into a temporary file (the crate's own CSV
//! formatting), read back with the schema's types (BIGINT, INTEGER, DECIMAL(p,s),
//! DATE, VARCHAR) and written as one Parquet file; the CSV is removed. Memory stays
//! bounded by one batch, whatever the scale.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tpcdsgen::config::{Session, SessionBuilder};
use tpcdsgen::csv::*;
use tpcdsgen::row::*;
use tpcdsgen::table::Table;

use crate::corpus::CorpusError;

/// Bumped when the generated files would differ (generator or layout change).
const LAYOUT: &str = "tpcdsgen4-v1";

/// TPC-DS tables generated on disk.
#[derive(Debug, Clone)]
pub struct TpcdsData {
    /// The directory holding the tables.
    pub dir: PathBuf,
    /// The scale factor they were generated at.
    pub scale_factor: f64,
    /// Table name and Parquet file, in schema order.
    pub tables: Vec<(String, PathBuf)>,
    /// Whether this call generated the data (false: it came from the cache).
    pub generated: bool,
}

/// The Arrow schema of each table of the bundled TPC-DS DDL, in file order.
pub fn schemas() -> Vec<(String, SchemaRef)> {
    let ddl = include_str!("../tpcds/schema.sql");
    let mut out = Vec::new();
    for stmt in ddl.split(';') {
        let Some(rest) = stmt.trim().lines().find(|l| l.starts_with("CREATE TABLE ")) else {
            continue;
        };
        let rest = &rest["CREATE TABLE ".len()..];
        let Some((name, cols)) = rest.split_once('(') else {
            continue;
        };
        let cols = cols.trim_end();
        let cols = cols.strip_suffix(')').unwrap_or(cols);
        let mut fields = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        let mut push = |col: &str| {
            let mut it = col.trim().splitn(2, ' ');
            let (Some(c), Some(t)) = (it.next(), it.next()) else {
                return;
            };
            fields.push(Field::new(c, data_type(t.trim()), true));
        };
        for (i, ch) in cols.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    push(&cols[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        push(&cols[start..]);
        out.push((name.trim().to_string(), Arc::new(Schema::new(fields))));
    }
    out
}

fn data_type(sql: &str) -> DataType {
    let upper = sql.to_ascii_uppercase();
    if let Some(args) = upper.strip_prefix("DECIMAL(").and_then(|r| r.strip_suffix(')')) {
        let mut it = args.split(',').map(|x| x.trim().parse::<u8>().unwrap_or(0));
        let (p, s) = (it.next().unwrap_or(38), it.next().unwrap_or(0));
        return DataType::Decimal128(p.max(1), s as i8);
    }
    match upper.as_str() {
        "BIGINT" => DataType::Int64,
        "INTEGER" | "INT" => DataType::Int32,
        "DATE" => DataType::Date32,
        _ => DataType::Utf8,
    }
}

/// Writes one table as CSV (with a header line).
fn write_csv(table: Table, session: &Session, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, "{}", csv_header(table, ','))?;
    let rows = |t: Table| session.get_scaling().get_row_count(t);
    macro_rules! emit {
        ($gen:ident, $csv:ident, $count:expr) => {{
            for row in $gen::new(session.clone(), $count) {
                writeln!(w, "{}", $csv::new(&row))?;
            }
        }};
    }
    match table {
        Table::CallCenter => emit!(CallCenterRowGenerator, CallCenterCsv, rows(table)),
        Table::CatalogPage => emit!(CatalogPageRowGenerator, CatalogPageCsv, rows(table)),
        // Returns replay their sales' line items: the count is the sales table's.
        Table::CatalogReturns => emit!(CatalogReturnsRowGenerator, CatalogReturnsCsv, rows(Table::CatalogSales)),
        Table::CatalogSales => emit!(CatalogSalesRowGenerator, CatalogSalesCsv, rows(table)),
        Table::Customer => emit!(CustomerRowGenerator, CustomerCsv, rows(table)),
        Table::CustomerAddress => emit!(CustomerAddressRowGenerator, CustomerAddressCsv, rows(table)),
        Table::CustomerDemographics => emit!(CustomerDemographicsRowGenerator, CustomerDemographicsCsv, rows(table)),
        Table::DateDim => emit!(DateDimRowGenerator, DateDimCsv, rows(table)),
        Table::HouseholdDemographics => emit!(HouseholdDemographicsRowGenerator, HouseholdDemographicsCsv, rows(table)),
        Table::IncomeBand => emit!(IncomeBandRowGenerator, IncomeBandCsv, rows(table)),
        Table::Inventory => emit!(InventoryRowGenerator, InventoryCsv, rows(table)),
        Table::Item => emit!(ItemRowGenerator, ItemCsv, rows(table)),
        Table::Promotion => emit!(PromotionRowGenerator, PromotionCsv, rows(table)),
        Table::Reason => emit!(ReasonRowGenerator, ReasonCsv, rows(table)),
        Table::ShipMode => emit!(ShipModeRowGenerator, ShipModeCsv, rows(table)),
        Table::Store => emit!(StoreRowGenerator, StoreCsv, rows(table)),
        Table::StoreReturns => emit!(StoreReturnsRowGenerator, StoreReturnsCsv, rows(Table::StoreSales)),
        Table::StoreSales => emit!(StoreSalesRowGenerator, StoreSalesCsv, rows(table)),
        Table::TimeDim => emit!(TimeDimRowGenerator, TimeDimCsv, rows(table)),
        Table::Warehouse => emit!(WarehouseRowGenerator, WarehouseCsv, rows(table)),
        Table::WebPage => emit!(WebPageRowGenerator, WebPageCsv, rows(table)),
        Table::WebReturns => emit!(WebReturnsRowGenerator, WebReturnsCsv, rows(Table::WebSales)),
        Table::WebSales => emit!(WebSalesRowGenerator, WebSalesCsv, rows(table)),
        Table::WebSite => emit!(WebSiteRowGenerator, WebSiteCsv, rows(table)),
        Table::DbgenVersion => emit!(DbgenVersionRowGenerator, DbgenVersionCsv, rows(table)),
    }
    Ok(())
}

/// Returns TPC-DS data at `scale_factor` under `cache_root`, generating it once. A
/// directory is used only when its completion marker exists, so an interrupted
/// generation is redone, never half-used.
pub fn ensure_tpcds_data(cache_root: &Path, scale_factor: f64) -> Result<TpcdsData, CorpusError> {
    if !(scale_factor > 0.0 && scale_factor <= 1000.0) {
        return Err(CorpusError::Generate {
            path: cache_root.to_path_buf(),
            message: format!("scale factor {scale_factor} is out of range (0, 1000]"),
        });
    }
    let dir = cache_root.join("tpcds").join(format!("sf{scale_factor}-{LAYOUT}"));
    let marker = dir.join("_COMPLETE");
    let schemas = schemas();
    let tables: Vec<(String, PathBuf)> = schemas
        .iter()
        .map(|(t, _)| (t.clone(), dir.join(format!("{t}.parquet"))))
        .collect();
    if marker.is_file() && tables.iter().all(|(_, p)| p.is_file()) {
        return Ok(TpcdsData {
            dir,
            scale_factor,
            tables,
            generated: false,
        });
    }
    // Generated into a directory of its own, then renamed into place: concurrent
    // callers (parallel tests, two runs) never read each other's half-written files.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let work = dir.with_extension(format!("tmp-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&work).map_err(|e| CorpusError::io(&work, e))?;
    let session = SessionBuilder::new()
        .with_scale_factor(scale_factor)
        .build()
        .map_err(|e| CorpusError::Generate {
            path: dir.clone(),
            message: e.to_string(),
        })?;
    for ((name, schema), (_, final_path)) in schemas.iter().zip(&tables) {
        let path = &work.join(final_path.file_name().unwrap_or_default());
        let Some(table) = Table::values().iter().copied().find(|t| t.get_name() == name) else {
            return Err(CorpusError::Generate {
                path: path.clone(),
                message: format!("tpcdsgen has no table `{name}`"),
            });
        };
        let csv = path.with_extension("csv.tmp");
        {
            let f = File::create(&csv).map_err(|e| CorpusError::io(&csv, e))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            write_csv(table, &session, &mut w)
                .and_then(|()| w.flush())
                .map_err(|e| CorpusError::io(&csv, e))?;
        }
        let f = File::open(&csv).map_err(|e| CorpusError::io(&csv, e))?;
        let reader = arrow::csv::ReaderBuilder::new(schema.clone())
            .with_header(true)
            .with_batch_size(8192)
            .build(f)
            .map_err(|e| CorpusError::Generate {
                path: csv.clone(),
                message: e.to_string(),
            })?;
        let mut failed = None;
        let batches = reader.map_while(|b| match b {
            Ok(b) => Some(b),
            Err(e) => {
                failed = Some(e.to_string());
                None
            }
        });
        crate::tpch::write_parquet(path, schema.clone(), batches)?;
        if let Some(message) = failed {
            return Err(CorpusError::Generate { path: csv, message });
        }
        fs::remove_file(&csv).map_err(|e| CorpusError::io(&csv, e))?;
    }
    let work_marker = work.join("_COMPLETE");
    File::create(&work_marker).map_err(|e| CorpusError::io(&work_marker, e))?;
    if dir.exists() && !marker.is_file() {
        // Left by an interrupted generation: never used, replaced.
        let _ = fs::remove_dir_all(&dir);
    }
    if let Err(e) = fs::rename(&work, &dir) {
        let _ = fs::remove_dir_all(&work);
        if !marker.is_file() {
            return Err(CorpusError::io(&dir, e));
        }
        // Another caller finished first: use its files.
    }
    Ok(TpcdsData {
        dir,
        scale_factor,
        tables,
        generated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_covers_every_bundled_table_with_types() {
        let s = schemas();
        assert_eq!(s.len(), 24);
        let (name, ss) = s.iter().find(|(n, _)| n == "store_sales").unwrap();
        assert_eq!(name, "store_sales");
        assert_eq!(
            ss.field_with_name("ss_net_profit").unwrap().data_type(),
            &DataType::Decimal128(7, 2)
        );
        assert_eq!(ss.field_with_name("ss_item_sk").unwrap().data_type(), &DataType::Int64);
        let (_, d) = s.iter().find(|(n, _)| n == "date_dim").unwrap();
        assert_eq!(d.field_with_name("d_date").unwrap().data_type(), &DataType::Date32);
    }

    #[test]
    fn generates_typed_parquet_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_tpcds_data(dir.path(), 0.01).unwrap();
        assert!(a.generated);
        assert_eq!(a.tables.len(), 24);
        let f = File::open(&a.tables.iter().find(|(t, _)| t == "store_sales").unwrap().1).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        assert!(r.metadata().file_metadata().num_rows() > 1000);
        let b = ensure_tpcds_data(dir.path(), 0.01).unwrap();
        assert!(!b.generated);
        assert!(ensure_tpcds_data(dir.path(), 0.0).is_err());
    }
}
