//! TPC-H data generation (with the `tpchgen` / `tpchgen-arrow` crates) into
//! Parquet files, cached by scale factor and generator version.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator,
    RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RecordBatchIterator, RegionArrow,
    SupplierArrow,
};

use crate::corpus::CorpusError;

/// Bumped when the generated files would differ (generator or layout change).
const LAYOUT: &str = "tpchgen3-v1";

/// TPC-H tables generated on disk.
#[derive(Debug, Clone)]
pub struct TpchData {
    /// The directory holding the tables.
    pub dir: PathBuf,
    /// The scale factor they were generated at.
    pub scale_factor: f64,
    /// Table name and Parquet file, in TPC-H order.
    pub tables: Vec<(String, PathBuf)>,
    /// Whether this call generated the data (false: it came from the cache).
    pub generated: bool,
}

/// The TPC-H tables, in the specification's order.
pub const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

/// Returns TPC-H data at `scale_factor` under `cache_root`, generating it once.
/// A directory is used only when its completion marker exists, so an interrupted
/// generation is redone, never half-used.
pub fn ensure_tpch_data(cache_root: &Path, scale_factor: f64) -> Result<TpchData, CorpusError> {
    if !(scale_factor > 0.0 && scale_factor <= 1000.0) {
        return Err(CorpusError::Generate {
            path: cache_root.to_path_buf(),
            message: format!("scale factor {scale_factor} is out of range (0, 1000]"),
        });
    }
    let dir = cache_root.join("tpch").join(format!("sf{scale_factor}-{LAYOUT}"));
    let marker = dir.join("_COMPLETE");
    let tables: Vec<(String, PathBuf)> = TABLES
        .iter()
        .map(|t| (t.to_string(), dir.join(format!("{t}.parquet"))))
        .collect();
    if marker.is_file() && tables.iter().all(|(_, p)| p.is_file()) {
        return Ok(TpchData {
            dir,
            scale_factor,
            tables,
            generated: false,
        });
    }
    fs::create_dir_all(&dir).map_err(|e| CorpusError::io(&dir, e))?;
    let sf = scale_factor;
    for (name, path) in &tables {
        let iter: Box<dyn RecordBatchIterator> = match name.as_str() {
            "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1))),
            "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1))),
            "part" => Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1))),
            "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))),
            "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))),
            "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))),
            "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1))),
            _ => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))),
        };
        let schema = iter.schema().clone();
        write_parquet(path, schema, iter)?;
    }
    File::create(&marker).map_err(|e| CorpusError::io(&marker, e))?;
    Ok(TpchData {
        dir,
        scale_factor,
        tables,
        generated: true,
    })
}

pub(crate) fn write_parquet(
    path: &Path,
    schema: SchemaRef,
    batches: impl Iterator<Item = RecordBatch>,
) -> Result<(), CorpusError> {
    let tmp = path.with_extension("parquet.tmp");
    let gen_err = |e: parquet::errors::ParquetError| CorpusError::Generate {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::create(&tmp).map_err(|e| CorpusError::io(&tmp, e))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).map_err(gen_err)?;
    for b in batches {
        w.write(&b).map_err(gen_err)?;
    }
    w.close().map_err(gen_err)?;
    fs::rename(&tmp, path).map_err(|e| CorpusError::io(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_tpch_data(dir.path(), 0.001).unwrap();
        assert!(a.generated);
        assert_eq!(a.tables.len(), 8);
        for (_, p) in &a.tables {
            assert!(fs::metadata(p).unwrap().len() > 0);
        }
        let b = ensure_tpch_data(dir.path(), 0.001).unwrap();
        assert!(!b.generated);
        assert!(ensure_tpch_data(dir.path(), -1.0).is_err());
    }
}
