import { PGlite } from '@electric-sql/pglite';
for (let i=0;i<3;i++){ const t=Date.now(); const db = await PGlite.create('memory://'); console.log('ready', Date.now()-t); const t2=Date.now(); const c = await db.clone?.(); console.log('clone', Date.now()-t2, !!c); }
