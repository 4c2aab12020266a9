//! A real Arrow Flight SQL server for the tests: the embedded DataFusion behind
//! arrow-flight's `FlightSqlService` on tonic, on loopback on a free port, with a
//! required bearer token. Statements are planned at `GetFlightInfo` (errors come
//! back as gRPC statuses) and streamed at `DoGet`; `GetSqlInfo` answers the
//! server's name and DataFusion version.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandGetSqlInfo, CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

/// The server's name in `GetSqlInfo`.
pub const SERVER_NAME: &str = "sqlflight-test-datafusion";

#[derive(Clone)]
pub struct DataFusionFlightSql {
    ctx: Arc<SessionContext>,
    token: String,
    info: Arc<SqlInfoData>,
}

fn to_status(e: DataFusionError) -> Status {
    use sqlflight_engines::ErrorClass as E;
    let m = e.strip_backtrace();
    match sqlflight_engines::datafusion_engine::classify(&e) {
        E::Parse | E::Plan => Status::invalid_argument(m),
        E::Resource => Status::resource_exhausted(m),
        E::Internal | E::Crash => Status::internal(m),
        _ => Status::unknown(m),
    }
}

impl DataFusionFlightSql {
    fn check(&self, md: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let want = format!("Bearer {}", self.token);
        match md.get("authorization").and_then(|v| v.to_str().ok()) {
            Some(v) if v == want => Ok(()),
            _ => Err(Status::unauthenticated("a valid bearer token is required")),
        }
    }
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FlightSqlService for DataFusionFlightSql {
    type FlightService = DataFusionFlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(request.metadata())?;
        let df = self.ctx.sql(&query.query).await.map_err(to_status)?;
        let schema = df.schema().as_arrow().clone();
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.check(request.metadata())?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not UTF-8"))?;
        let df = self.ctx.sql(&sql).await.map_err(to_status)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await.map_err(to_status)?;
        let batches = stream.map_err(|e| arrow_flight::error::FlightError::Tonic(Box::new(to_status(e))));
        let out = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(out)))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check(request.metadata())?;
        let ticket = Ticket::new(query.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(query.into_builder(&self.info).schema().as_ref())
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(request.metadata())?;
        let builder = query.into_builder(&self.info);
        let schema = builder.schema();
        let batch = builder.build();
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async { batch }))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// A running server; stopped when dropped.
pub struct FlightSqlServer {
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FlightSqlServer {
    /// Serves `ctx` on 127.0.0.1 on a free port, requiring `token`.
    pub fn start(ctx: SessionContext, token: &str) -> FlightSqlServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, SERVER_NAME);
        b.append(SqlInfo::FlightSqlServerVersion, datafusion::DATAFUSION_VERSION);
        let svc = DataFusionFlightSql {
            ctx: Arc::new(ctx),
            token: token.to_string(),
            info: Arc::new(b.build().expect("sql info")),
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(FlightServiceServer::new(svc))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        FlightSqlServer {
            url: format!("http://{addr}"),
            runtime: Some(runtime),
        }
    }
}

impl Drop for FlightSqlServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
